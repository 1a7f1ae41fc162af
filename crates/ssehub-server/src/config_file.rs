//! Loading the configuration: command-line flags, then `SSEHUB_*`
//! environment variables, then a TOML file (`--config`), then the
//! built-in defaults — the first that sets a value wins.
//!
//! The file holds one setting per flag, named as the long flag without its
//! dashes (`max-body = "8MiB"`; `max_body` is read the same), with the
//! same value syntax as the flag. Flags that can be repeated take a list:
//!
//! ```toml
//! listen = "0.0.0.0:3000"
//! issuer = ["https://app.example key=HS256:env:APP_SECRET"]
//! max-body = "8MiB"
//! history-age = "15m"
//! cors-origin = ["https://app.example", "https://admin.example"]
//! subscriptions = true
//! ```
//!
//! Every value of the file goes through the flag's own parser before the
//! hub starts, so a bad one is reported with the file, the setting and the
//! flag it stands for; a setting that is not a flag is refused, not
//! ignored. The file's values become the flags' defaults, which is what
//! puts them below the environment and the command line.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::config::Config;

/// The id of the `--config` flag itself (the field of [`Config`]).
const CONFIG_ID: &str = "config_file";

/// Why the configuration could not be loaded.
///
/// ```
/// use ssehub_server::config_file::LoadError;
/// let err = ssehub_server::Config::load_from(["ssehub", "--config", "/nonexistent/hub.toml"]).unwrap_err();
/// assert!(matches!(err, LoadError::Read { .. }));
/// assert!(err.to_string().starts_with("--config /nonexistent/hub.toml: "));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The command line or the environment is wrong (or asks for
    /// `--help` / `--version`): clap's own report, which
    /// [`clap::Error::exit`] prints as usual.
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// The file could not be read.
    #[error("--config {path}: {source}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("--config {path}: not TOML: {source}", path = .path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        #[source]
        source: toml::de::Error,
    },
    /// A setting that is no flag of the hub's.
    #[error(
        "--config {path}: `{key}` is not a setting (settings are the long flags of `ssehub --help`, without the dashes)",
        path = .path.display()
    )]
    Unknown {
        /// The file.
        path: PathBuf,
        /// The setting as written.
        key: String,
    },
    /// A value its flag refuses.
    #[error("--config {path}: `{key}` (--{flag}): {reason}", path = .path.display())]
    Value {
        /// The file.
        path: PathBuf,
        /// The setting as written.
        key: String,
        /// The flag it stands for.
        flag: String,
        /// Why the value is refused.
        #[source]
        reason: SettingError,
    },
}

/// Why the `--config` file's value for a flag is refused.
///
/// ```
/// use ssehub_server::config_file::SettingError;
/// assert_eq!(SettingError::List.to_string(), "takes one value, not a list");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    /// A list for a flag that takes one value.
    #[error("takes one value, not a list")]
    List,
    /// A table, or a list inside a list.
    #[error("expected a string, a number or a boolean")]
    NotScalar,
    /// An infinite number, or not a number.
    #[error("{0} is not a finite number")]
    NotFinite(f64),
    /// Neither `true` nor `false` for a switch.
    #[error("{0:?} is not a boolean (true or false)")]
    NotBoolean(String),
    /// The flag's own parser refuses it; shown as on the command line.
    #[error("{}", first_line(.0))]
    Flag(#[source] clap::Error),
}

/// The first line of clap's report, without its `error: ` prefix: the
/// reason alone, which the file's name and setting precede.
fn first_line(err: &clap::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// Where a setting in effect came from.
///
/// ```
/// use ssehub_server::config_file::Source;
/// assert_eq!(Source::File.to_string(), "file");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// Its `SSEHUB_*` environment variable.
    Env,
    /// The `--config` file.
    File,
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "flag",
            Self::Env => "environment",
            Self::File => "file",
            Self::Default => "default",
        })
    }
}

/// One setting in effect: its flag, its values as given, and where they
/// came from.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The long flag, without its dashes.
    pub flag: String,
    /// The values as written (empty when unset); secrets are redacted.
    pub values: Vec<String>,
    /// Where they came from.
    pub source: Source,
}

/// Every setting in effect, in `ssehub --help` order: what
/// `ssehub --check-config` prints.
///
/// ```
/// let (_, effective) = ssehub_server::Config::load_with_sources(["ssehub", "--max-body", "8MiB"]).unwrap();
/// let max_body = effective.settings.iter().find(|s| s.flag == "max-body").unwrap();
/// assert_eq!(max_body.values, ["8MiB"]);
/// assert_eq!(max_body.source, ssehub_server::config_file::Source::Flag);
/// assert!(effective.to_string().contains("max-body = \"8MiB\"  # flag"));
/// ```
#[derive(Debug, Clone)]
pub struct Effective {
    /// The settings.
    pub settings: Vec<Setting>,
}

impl fmt::Display for Effective {
    /// As TOML a `--config` file takes, each line commented with its
    /// source; unset settings are commented out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for setting in &self.settings {
            let quoted: Vec<String> = setting.values.iter().map(|v| toml_string(v)).collect();
            match quoted.as_slice() {
                [] => writeln!(f, "# {} (unset)", setting.flag)?,
                [one] => writeln!(f, "{} = {one}  # {}", setting.flag, setting.source)?,
                many => writeln!(
                    f,
                    "{} = [{}]  # {}",
                    setting.flag,
                    many.join(", "),
                    setting.source
                )?,
            }
        }
        Ok(())
    }
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

impl Config {
    /// The configuration from the process's arguments, environment and
    /// `--config` file; exits with clap's report on a command-line error,
    /// `--help` or `--version`.
    ///
    /// # Errors
    /// [`LoadError`] other than [`LoadError::Cli`]: the file cannot be
    /// read or holds a setting its flag refuses.
    pub fn load() -> Result<Self, LoadError> {
        match Self::load_from(std::env::args_os()) {
            Err(LoadError::Cli(err)) => err.exit(),
            other => other,
        }
    }

    /// The configuration from `args` (the program name first), the
    /// environment and the `--config` file `args` or `SSEHUB_CONFIG` name.
    ///
    /// # Errors
    /// [`LoadError`] when the command line, the environment or the file
    /// holds something the hub refuses.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("ssehub-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let file = dir.join("hub.toml");
    /// std::fs::write(&file, "max-body = \"8MiB\"\nhistory-age = \"1h\"\n").unwrap();
    /// let file = file.to_str().unwrap();
    /// let config = ssehub_server::Config::load_from(["ssehub", "--config", file]).unwrap();
    /// assert_eq!(config.max_body, 8 << 20);
    /// // The command line wins over the file.
    /// let config = ssehub_server::Config::load_from(["ssehub", "--config", file, "--max-body", "1KiB"]).unwrap();
    /// assert_eq!(config.max_body, 1024);
    /// // A value the flag refuses names the setting and the flag.
    /// std::fs::write(dir.join("bad.toml"), "lifetime-jitter = nan\n").unwrap();
    /// let err = ssehub_server::Config::load_from(["ssehub", "--config", dir.join("bad.toml").to_str().unwrap()]).unwrap_err();
    /// assert!(err.to_string().contains("`lifetime-jitter` (--lifetime-jitter)"), "{err}");
    /// ```
    pub fn load_from<I, T>(args: I) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::load_with_sources(args).map(|(config, _)| config)
    }

    /// [`load_from`](Self::load_from), with where each setting came from.
    ///
    /// # Errors
    /// As [`load_from`](Self::load_from).
    pub fn load_with_sources<I, T>(args: I) -> Result<(Self, Effective), LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut command = Self::command();
        let mut from_file = Vec::new();
        if let Some(path) = config_path(&command, &args) {
            let (with_file, ids) = apply_file(command, path)?;
            command = with_file;
            from_file = ids;
        }
        let matches = command.clone().try_get_matches_from(&args)?;
        let config = Self::from_arg_matches(&matches)?;
        let effective = effective(&command, &matches, &from_file);
        Ok((config, effective))
    }
}

/// The file `--config` or `SSEHUB_CONFIG` names, found by a lenient first
/// reading of the command line (its errors are reported by the second).
fn config_path(command: &Command, args: &[OsString]) -> Option<PathBuf> {
    let matches = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    matches.get_one::<PathBuf>(CONFIG_ID).cloned()
}

/// `command` with the file's values as its flags' defaults, and the ids of
/// the flags the file set.
fn apply_file(mut command: Command, path: PathBuf) -> Result<(Command, Vec<String>), LoadError> {
    let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|source| LoadError::Toml {
        path: path.clone(),
        source,
    })?;
    let mut ids = Vec::new();
    for (key, value) in &table {
        let name = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(name.as_str()) && arg.get_id() != CONFIG_ID)
            .cloned()
            .ok_or_else(|| LoadError::Unknown {
                path: path.clone(),
                key: key.clone(),
            })?;
        let refuse = |reason: SettingError| LoadError::Value {
            path: path.clone(),
            key: key.clone(),
            flag: name.clone(),
            reason,
        };
        let values = values_of(value, &arg).map_err(refuse)?;
        for value in &values {
            check(&arg, value).map_err(refuse)?;
        }
        let id = arg.get_id().to_string();
        command = command.mut_arg(&id, |arg| arg.default_values(values));
        ids.push(id);
    }
    Ok((command, ids))
}

/// A TOML value as the flag's values, written as on the command line.
fn values_of(value: &toml::Value, arg: &Arg) -> Result<Vec<String>, SettingError> {
    let repeatable = matches!(arg.get_action(), ArgAction::Append);
    match value {
        toml::Value::Array(items) if repeatable => items.iter().map(scalar).collect(),
        toml::Value::Array(_) => Err(SettingError::List),
        other => Ok(vec![scalar(other)?]),
    }
}

fn scalar(value: &toml::Value) -> Result<String, SettingError> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) if f.is_finite() => Ok(f.to_string()),
        toml::Value::Float(f) => Err(SettingError::NotFinite(*f)),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => Err(SettingError::NotScalar),
    }
}

/// Runs the flag's own parser on `value`: the same check, and the same
/// message, as on the command line. (The parser is run through a command
/// of that one flag: clap keeps a parser's direct use to itself.)
fn check(arg: &Arg, value: &str) -> Result<(), SettingError> {
    let long = arg.get_long().unwrap_or_default().to_owned();
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return match value {
            "true" | "false" => Ok(()),
            _ => Err(SettingError::NotBoolean(value.to_owned())),
        };
    }
    let mut probe = Arg::new(arg.get_id().clone())
        .long(long.clone())
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    if let Some(names) = arg.get_value_names() {
        probe = probe.value_names(names.iter().cloned());
    }
    Command::new("ssehub")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--{long}={value}")])
        .map(drop)
        .map_err(SettingError::Flag)
}

/// Every flag's values in effect, with their source.
fn effective(command: &Command, matches: &ArgMatches, from_file: &[String]) -> Effective {
    let settings = command
        .get_arguments()
        .filter_map(|arg| {
            let flag = arg.get_long()?.to_owned();
            let id = arg.get_id().as_str();
            if matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
                || id == "check_config"
            {
                return None;
            }
            let source = match matches.value_source(id) {
                Some(ValueSource::CommandLine) => Source::Flag,
                Some(ValueSource::EnvVariable) => Source::Env,
                _ if from_file.iter().any(|f| f == id) => Source::File,
                _ => Source::Default,
            };
            let secret = arg.is_hide_env_values_set();
            let values = matches
                .get_raw(id)
                .map(|raw| {
                    raw.map(|value| {
                        if secret {
                            "<redacted>".to_owned()
                        } else {
                            value.to_string_lossy().into_owned()
                        }
                    })
                    .collect()
                })
                .unwrap_or_default();
            Some(Setting {
                flag,
                values,
                source,
            })
        })
        .collect();
    Effective { settings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ssehub-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(path: &std::path::Path, extra: &[&str]) -> Result<(Config, Effective), LoadError> {
        let mut args = vec!["ssehub", "--config", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        Config::load_with_sources(args)
    }

    #[test]
    fn every_kind_of_value_is_read() {
        let path = file(
            "kinds.toml",
            r#"
listen = "127.0.0.1:4000"
max_body = "8MiB"
history-age = "1h"
history-events = 500
lifetime-jitter = 0.25
subscriptions = true
cors-origin = ["https://a.example", "https://b.example"]
issuer = ["https://app.example key=HS256:a-secret-long-enough-for-hs256-tokens"]
stream-server = "hyper"
"#,
        );
        let (config, effective) = load(&path, &[]).unwrap();
        assert_eq!(config.listen.port(), 4000);
        assert_eq!(config.max_body, 8 << 20);
        assert_eq!(config.history_age, std::time::Duration::from_secs(3600));
        assert_eq!(config.history_events, 500);
        assert!((config.lifetime_jitter - 0.25).abs() < f64::EPSILON);
        assert!(config.subscriptions);
        assert_eq!(
            config.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(config.issuers[0].id, "https://app.example");
        assert_eq!(config.stream_server, crate::config::StreamServer::Hyper);
        let source = |flag: &str| {
            effective
                .settings
                .iter()
                .find(|s| s.flag == flag)
                .unwrap()
                .source
        };
        assert_eq!(source("max-body"), Source::File);
        assert_eq!(source("keep-alive"), Source::Default);
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let path = file(
            "wins.toml",
            "max-body = \"8MiB\"\ncors-origin = [\"https://a.example\"]\n",
        );
        let (config, effective) = load(
            &path,
            &["--max-body", "2KiB", "--cors-origin", "https://c.example"],
        )
        .unwrap();
        assert_eq!(config.max_body, 2048);
        assert_eq!(config.cors_origins, ["https://c.example"]);
        let max_body = effective
            .settings
            .iter()
            .find(|s| s.flag == "max-body")
            .unwrap();
        assert_eq!(max_body.source, Source::Flag);
    }

    #[test]
    fn settings_that_are_no_flag_are_refused() {
        let path = file("unknown.toml", "max-bodyy = 10\n");
        let err = load(&path, &[]).unwrap_err();
        assert!(
            matches!(&err, LoadError::Unknown { key, .. } if key == "max-bodyy"),
            "{err}"
        );
        let path = file("itself.toml", "config = \"other.toml\"\n");
        assert!(matches!(
            load(&path, &[]).unwrap_err(),
            LoadError::Unknown { .. }
        ));
    }

    #[test]
    fn bad_values_name_the_setting_and_the_flag() {
        for (text, wanted) in [
            ("max-body = \"lots\"\n", "`max-body` (--max-body)"),
            ("lifetime-jitter = nan\n", "not a finite number"),
            ("lifetime-jitter = 1.5\n", "is not a number from 0 to 1"),
            (
                "history-events = -1\n",
                "`history-events` (--history-events)",
            ),
            ("keep-alive = \"soon\"\n", "`keep-alive` (--keep-alive)"),
            (
                "listen = [\"127.0.0.1:1\"]\n",
                "takes one value, not a list",
            ),
            (
                "stream-server = \"fast\"\n",
                "`stream-server` (--stream-server)",
            ),
            ("anonymous = { yes = true }\n", "expected a string"),
        ] {
            let path = file("bad.toml", text);
            let err = load(&path, &[]).unwrap_err();
            assert!(matches!(err, LoadError::Value { .. }), "{text}: {err}");
            assert!(err.to_string().contains(wanted), "{text}: {err}");
        }
    }

    #[test]
    fn a_file_that_is_not_toml_is_refused() {
        let path = file("broken.toml", "max-body = \n");
        assert!(matches!(
            load(&path, &[]).unwrap_err(),
            LoadError::Toml { .. }
        ));
    }

    #[test]
    fn secrets_are_redacted_in_the_effective_settings() {
        let (_, effective) =
            Config::load_with_sources(["ssehub", "--jwt-key", "hunter2-hunter2"]).unwrap();
        let text = effective.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("jwt-key = \"<redacted>\"  # flag"), "{text}");
    }
}
