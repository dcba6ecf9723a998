//! `tollgate`: parse arguments, load the config, start logging, call the library.

mod admin_cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tollgate::{AdminListen, NodeOptions};
use tollgate_config::{ConfigError, Loaded, ProcessEnv, load_file};

/// mimalloc instead of glibc malloc: the gateway allocates and frees many small buffers per request
/// across hundreds of connections, where glibc's bins cost ~10% of the CPU at concurrency 128.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (`mimalloc.h`; libmimalloc-sys does
/// not name it). The test below checks that the option at this index has purge_delay's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory stays with the process before mimalloc returns it to the OS (its
/// default is 1 s; jemalloc's decay is 10 s).
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Keeps freed memory for [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` says otherwise.
///
/// Under load the node frees and reallocates large buffers every fraction of a second (a trace
/// export batch is ~1 MB every ~0.1 s at 20k requests/s); with a 1 s delay their pages had often
/// gone back to the OS meanwhile, and each reuse faulted them in again for the kernel to zero
/// (~16 page faults per export, `clear_page` ~0.4 µs per traced request in `perf`). Ten seconds
/// removes those faults: ~1% more throughput untraced, ~2% traced (README, benchmark notes).
fn configure_allocator() {
    // SAFETY: sets an option value in mimalloc's static option table before any other thread
    // exists (the first statement of `main`); `mi_option_set_default` ignores an index out of
    // range and leaves an option the environment set alone.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// Bad configuration or arguments (clap also exits with 2 for bad arguments).
const EXIT_CONFIG: u8 = 2;
const EXIT_RUNTIME: u8 = 1;

#[derive(Parser)]
#[command(name = "tollgate", version, about = "An OpenAI-compatible LLM gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway.
    Serve {
        /// The LiteLLM-compatible config.yaml.
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, default_value_t = 4000)]
        port: u16,
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        /// Where the node keeps its state (keys, budgets, usage).
        #[arg(long, default_value = "./tollgate-data")]
        data_dir: PathBuf,
        /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
        #[arg(long, default_value_t = tollgate::DEFAULT_DRAIN_TIMEOUT.as_secs())]
        drain_timeout: u64,
        /// The admin gRPC port (overrides admin.grpc_listen's port; 0 picks a free one).
        #[arg(long)]
        admin_port: Option<u16>,
    },
    /// Manage keys, users, teams and read usage through a node's admin gRPC API.
    Admin(Box<admin_cli::AdminArgs>),
    /// Validate a config and print every problem with its YAML path.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    configure_allocator();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Admin(args) => admin(*args),
        Command::Serve {
            config,
            port,
            host,
            data_dir,
            drain_timeout,
            admin_port,
        } => {
            let Some(loaded) = load(&config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            let Ok(addr) = format!("{host}:{port}").parse::<SocketAddr>() else {
                eprintln!("error: --host {host} --port {port} is not a socket address");
                return ExitCode::from(EXIT_CONFIG);
            };
            let options = NodeOptions {
                drain_timeout: Duration::from_secs(drain_timeout),
                data_dir: Some(data_dir),
                admin: AdminListen::FromConfig { port: admin_port },
                ..NodeOptions::default()
            };
            match serve(loaded, config, addr, options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
        }
    }
}

fn serve(
    loaded: Loaded,
    source: PathBuf,
    addr: SocketAddr,
    options: NodeOptions,
) -> anyhow::Result<()> {
    runtime()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?
        .block_on(serve_on_runtime(loaded, source, addr, options))
}

/// One worker thread per core the node may run on. On a single core (a small container, or
/// a node pinned with `taskset`) the single-threaded scheduler does the same work without
/// work-stealing bookkeeping or cross-thread wake-ups.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

async fn serve_on_runtime(
    loaded: Loaded,
    source: PathBuf,
    addr: SocketAddr,
    options: NodeOptions,
) -> anyhow::Result<()> {
    let observability = &loaded.config.observability;
    let telemetry = tollgate_telemetry::init(&tollgate_telemetry::TracingSettings {
        json_logs: observability.log_format == tollgate_config::LogFormat::Json,
        otlp_endpoint: observability.otlp.endpoint.clone(),
        service_name: observability
            .otlp
            .service_name
            .clone()
            .unwrap_or_else(|| "tollgate".to_owned()),
        sample_ratio: observability.otlp.sample_ratio,
    })?;
    for w in &loaded.warnings {
        tracing::warn!("{}: {w}", source.display());
    }
    if let Some(endpoint) = telemetry.traces_endpoint() {
        tracing::info!(
            sample_ratio = tollgate_telemetry::trace_sample_ratio(),
            "exporting traces over OTLP/gRPC to {endpoint} (requests whose client sent a traceparent follow its sampled flag)"
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let node = tollgate::Node::new(loaded.config, options).await?;
    tracing::info!("listening on http://{local}");
    announce(local, node.admin_addr());
    node.serve(listener, shutdown_signal()).await
}

/// Machine-readable lines on stdout, for scripts and tests that start the node on port 0.
/// Whoever started us may have stopped reading; that is not an error.
fn announce(addr: SocketAddr, admin: Option<SocketAddr>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on http://{addr}");
    if let Some(admin) = admin {
        let _ = writeln!(out, "admin grpc on http://{admin}");
    }
    let _ = out.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn admin_command(args: admin_cli::AdminArgs) -> anyhow::Result<String> {
    admin_cli::run(args).await
}

#[expect(clippy::print_stdout, reason = "the command's answer")]
fn admin(args: admin_cli::AdminArgs) -> ExitCode {
    match admin_command(args) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

fn load(path: &std::path::Path) -> Option<Loaded> {
    match load_file(path, &ProcessEnv) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            report(&e);
            None
        }
    }
}

fn report(e: &ConfigError) {
    for w in &e.warnings {
        eprintln!("warning: {}: {w}", e.source_name);
    }
    for p in &e.problems {
        eprintln!("error: {}: {p}", e.source_name);
    }
    eprintln!("{e}");
}

fn check(path: &std::path::Path) -> ExitCode {
    match load_file(path, &ProcessEnv) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {}: {w}", path.display());
            }
            if let Err(e) = tollgate::check_routes(&loaded.config) {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(EXIT_CONFIG);
            }
            let groups: std::collections::BTreeSet<&str> = loaded
                .config
                .deployments
                .iter()
                .map(|d| d.model_name.as_str())
                .collect();
            eprintln!(
                "{}: OK ({} deployments in {} model groups, {} warnings)",
                path.display(),
                loaded.config.deployments.len(),
                groups.len(),
                loaded.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            report(&e);
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_is_set_at_mimallocs_purge_delay_option() {
        // SAFETY: reads a value from mimalloc's static option table.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // No other option defaults to 1000: a mimalloc whose options moved fails here.
            assert_eq!(get(), 1000, "mimalloc v3's default purge_delay");
            configure_allocator();
            assert_eq!(get(), PURGE_DELAY_MS);
        } else {
            let set = get();
            configure_allocator();
            assert_eq!(get(), set, "the environment's value stays");
        }
    }
}
