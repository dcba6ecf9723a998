//! `tollgate-mock-provider [--host 127.0.0.1] [--port 0] [--config mock.yaml]`: binds, prints
//! `listening on http://HOST:PORT` (one line, for scripts and tests) and serves until SIGTERM or
//! SIGINT.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tollgate_mock_provider::{MockSettings, run, settings_from_yaml};

/// The Tollgate mock LLM provider (OpenAI, Azure and Anthropic wire formats).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 picks a free one (see the `listening on` line).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// YAML file of mock settings (latency, faults, keys, prices, models).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let settings = match &args.config {
        None => MockSettings::default(),
        Some(path) => {
            let yaml = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            settings_from_yaml(&yaml).with_context(|| format!("parsing {}", path.display()))?
        }
    };
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let address = listener.local_addr()?;
    announce(&format!("listening on http://{address}"))?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    run(settings, listener, shutdown).await
}

#[expect(
    clippy::print_stdout,
    reason = "the one line scripts and tests parse for the port"
)]
fn announce(line: &str) -> anyhow::Result<()> {
    println!("{line}");
    std::io::stdout().flush()?;
    Ok(())
}
