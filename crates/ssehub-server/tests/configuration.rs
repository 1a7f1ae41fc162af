//! The `ssehub` binary's configuration as an operator meets it: a TOML
//! file, `SSEHUB_*` variables and flags, in that order of precedence;
//! `--check-config`; refusals that name the flag; every flag documented.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A directory of this test process's own.
fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssehub-configuration-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn file(name: &str, text: &str) -> String {
    let path = dir().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs the binary with `args` and `env`, every other `SSEHUB_*` variable
/// removed.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssehub"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SSEHUB_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The line `--check-config` prints for `flag`.
fn line<'a>(text: &'a str, flag: &str) -> &'a str {
    let prefix = format!("{flag} = ");
    text.lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {flag} in:\n{text}"))
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let config = file(
        "precedence.toml",
        "max-body = \"8MiB\"\nhistory-age = \"1h\"\nkeep-alive = \"20s\"\nlisten = \"127.0.0.1:0\"\n",
    );
    let output = run(
        &["--config", &config, "--check-config", "--max-body", "2KiB"],
        &[("SSEHUB_MAX_BODY", "4KiB"), ("SSEHUB_HISTORY_AGE", "2h")],
    );
    let text = stdout(&output);
    assert!(output.status.success(), "{}{}", text, stderr(&output));
    assert_eq!(line(&text, "max-body"), "max-body = \"2KiB\"  # flag");
    assert_eq!(
        line(&text, "history-age"),
        "history-age = \"2h\"  # environment"
    );
    assert_eq!(line(&text, "keep-alive"), "keep-alive = \"20s\"  # file");
    assert_eq!(
        line(&text, "write-timeout"),
        "write-timeout = \"10s\"  # default"
    );
    assert!(text.ends_with("# configuration OK\n"), "{text}");
}

#[test]
fn the_file_can_be_named_by_the_environment() {
    let config = file("by-env.toml", "drain = \"1s\"\nlisten = \"127.0.0.1:0\"\n");
    let output = run(&["--check-config"], &[("SSEHUB_CONFIG", &config)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(line(&stdout(&output), "drain"), "drain = \"1s\"  # file");
}

#[test]
fn the_hub_never_starts_half_configured() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "lifetime-jitter = nan\n",
            &[],
            "`lifetime-jitter` (--lifetime-jitter)",
        ),
        (
            "max-body = \"eight megs\"\n",
            &[],
            "`max-body` (--max-body)",
        ),
        ("colour = \"blue\"\n", &[], "`colour` is not a setting"),
        (
            "keep-alive = \"0s\"\n",
            &[],
            "--keep-alive: must be at least 100ms",
        ),
        (
            "tls-cert = \"/tmp/cert.pem\"\n",
            &[],
            "--tls-cert: needs --tls-key",
        ),
        (
            "history-events = 0\n",
            &[],
            "--history-events: must be at least 1",
        ),
        (
            "issuer = [\"https://idp.example key=RS256:@/nonexistent/key.pem\"]\n",
            &[],
            "cannot read key file /nonexistent/key.pem",
        ),
        (
            "cors-origin = [\"https://app.example/path\"]\n",
            &[],
            "--cors-origin: must be",
        ),
        (
            "publish-origin = [\"app.example\"]\n",
            &[],
            "--publish-origin: must be",
        ),
        (
            "cookie-name = \"my cookie\"\n",
            &[],
            "--cookie-name: must be a cookie name",
        ),
        (
            "transport-tls-ca = \"/tmp/ca.pem\"\n",
            &[],
            "--transport-tls-ca: applies to a rediss://",
        ),
        (
            "",
            &["--publisher-jwt-alg", "RS256"],
            "--publisher-jwt-alg: names the algorithm",
        ),
        ("", &["--lifetime-jitter", "NaN"], "--lifetime-jitter"),
        ("", &["--max-body", "8 parsecs"], "--max-body"),
        ("", &["--transport", "http://10.0.0.1"], "--transport"),
    ];
    for (i, (text, flags, wanted)) in cases.iter().enumerate() {
        let config = file(
            &format!("bad-{i}.toml"),
            &format!("listen = \"0.0.0.0:0\"\n{text}"),
        );
        let mut args = vec!["--config", config.as_str()];
        args.extend_from_slice(flags);
        // Both as a check and as a real start: neither goes ahead.
        for extra in [&["--check-config"][..], &[]] {
            let mut all = args.clone();
            all.extend_from_slice(extra);
            let output = run(
                &all,
                &[
                    ("SSEHUB_JWT_KEY", "x"),
                    ("SSEHUB_ISSUER", "https://a.example"),
                ],
            );
            let err = stderr(&output);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{text} {flags:?} {extra:?}: {err}"
            );
            assert!(
                err.contains(wanted),
                "{text} {flags:?} {extra:?}: wanted {wanted:?} in {err}"
            );
            assert!(
                stdout(&output).is_empty(),
                "{text}: it printed {}",
                stdout(&output)
            );
        }
    }
}

#[test]
fn every_flag_is_in_the_help_and_in_the_readme() {
    let help = stdout(&run(&["--help"], &[]));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let flags: Vec<String> = help
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let start = line.find("--")?;
            let name: String = line[start + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (line[..start].trim_end_matches([',', ' ']).len() <= 2 && !name.is_empty())
                .then_some(name)
        })
        .filter(|name| name != "help" && name != "version")
        .collect();
    assert!(flags.len() > 30, "{flags:?}");
    assert!(flags.iter().any(|f| f == "config"));
    let missing: Vec<&String> = flags
        .iter()
        .filter(|flag| !readme.contains(&format!("`--{flag}")))
        .collect();
    assert!(
        missing.is_empty(),
        "flags the README does not list: {missing:?}"
    );
}
