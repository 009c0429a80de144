//! `flag-server`: parse the configuration, install the log subscriber, serve until SIGTERM or
//! SIGINT (graceful: in-flight requests finish, queued writes commit).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;

use clap::Parser;
use flag_server::config::{Command, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Some(Command::Openapi) = config.command {
        println!("{}", flag_server::api::openapi_json());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr's reader went away) is dropped; reporting
        // it on stderr would panic and stop the server.
        .log_internal_errors(false)
        .init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flag-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let running = flag_server::start(&config).await?;
    if let Some(secret) = &running.created_admin_token {
        // Shown once: only its hash is stored. Kept only once it is out (see `admin_token_shown`).
        let mut out = std::io::stdout().lock();
        writeln!(out, "admin token (shown once, store it now): {secret}")
            .and_then(|()| out.flush())
            .context("cannot print the new admin token; the next start creates another")?;
        running.admin_token_shown().await?;
    }
    tracing::info!(addr = %running.addr, db = %config.db, "listening");
    shutdown_signal().await;
    tracing::info!("shutting down");
    // End the SSE streams first: a graceful stop would otherwise wait for them.
    running.state.broadcaster.shutdown();
    running.handle.stop(true).await;
    let _ = running.task.await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
