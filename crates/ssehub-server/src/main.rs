//! `ssehub`: run the hub. See `ssehub --help`.

use std::io::Write as _;

use ssehub_server::Config;
use ssehub_server::config::LogFormat;
use ssehub_server::config_file::LoadError;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let (config, effective) = match Config::load_with_sources(std::env::args_os()) {
        Ok(loaded) => loaded,
        Err(LoadError::Cli(err)) => err.exit(),
        Err(err) => {
            eprintln!("ssehub: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match config.runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ssehub: cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, effective))
}

async fn run(
    config: Config,
    effective: ssehub_server::config_file::Effective,
) -> std::process::ExitCode {
    if config.check_config {
        return match ssehub_server::check(&config).await {
            Ok(_) => {
                // Written, not printed: a closed pipe (`| head`) is no panic.
                let _ = writeln!(std::io::stdout().lock(), "{effective}# configuration OK");
                std::process::ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("ssehub: {err}");
                std::process::ExitCode::from(2)
            }
        };
    }
    let filter = EnvFilter::try_from_env("SSEHUB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_format == LogFormat::Json {
        logs.json().init();
    } else {
        logs.init();
    }
    let mut hub = match ssehub_server::start(config).await {
        Ok(hub) => hub,
        Err(err) => {
            tracing::error!("{err}");
            // 2, as for a bad flag: the configuration is at fault, not the run.
            let configuration = matches!(
                err,
                ssehub_server::StartError::Config(_) | ssehub_server::StartError::Tls(_)
            );
            return std::process::ExitCode::from(if configuration { 2 } else { 1 });
        }
    };
    // Scripts and tests wait for this exact first line.
    let mut out = std::io::stdout().lock();
    let scheme = if hub.settings().config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let _ = writeln!(out, "listening on {scheme}://{}", hub.local_addr());
    let settings = hub.settings();
    if settings.dev {
        let (publisher, subscriber) = hub.dev_tokens();
        let _ = writeln!(
            out,
            "development mode: demo page at http://{addr}/ ; hub at {hub}\n\
             publisher token (publish + subscribe on every topic):\n{}\n\
             subscriber token (subscribe on every topic):\n{}",
            publisher
                .as_deref()
                .unwrap_or("(none: the key cannot sign)"),
            subscriber
                .as_deref()
                .unwrap_or("(none: the key cannot sign)"),
            addr = hub.local_addr(),
            hub = hub.hub_url(),
        );
    }
    if settings.debugger {
        let _ = writeln!(
            out,
            "debugger (no tokens) at {scheme}://{}/.well-known/mercure/debug/",
            hub.local_addr()
        );
    }
    let _ = out.flush();
    drop(out);
    tokio::select! {
        () = signal() => {}
        result = hub.wait() => {
            if let Err(err) = result {
                tracing::error!("server failed: {err}");
                return std::process::ExitCode::FAILURE;
            }
            return std::process::ExitCode::SUCCESS;
        }
    }
    match hub.shutdown().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("shutdown: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
