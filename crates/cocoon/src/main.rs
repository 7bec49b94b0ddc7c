//! `cocoon`: the one binary. Thin by design: it parses the command line, loads configs, and
//! calls the daemon libraries.

mod attest;
mod bench;
mod bench_scale;
mod bench_seal;
mod devnet;
mod model;
mod receipt;
mod root;
mod telegram;
mod wallet;

/// mimalloc: the relay allocates a few small buffers per packet, and glibc's allocator showed up
/// as ~9 % of the chain's CPU in `bench/relay.sh` profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use cocoon_net::shutdown::drain_on_signals;
use cocoon_net::ShutdownTrigger;
use serde::de::DeserializeOwned;

/// Cocoon: confidential AI inference, paid in Toncoin.
///
/// Start with `cocoon devnet`: it runs a proxy, a worker and a client on this machine and
/// prints the OpenAI-compatible URL to point any OpenAI SDK at.
#[derive(Parser, Debug)]
#[command(name = "cocoon", version, about, long_about)]
struct Cli {
    /// Log filter (tracing syntax), e.g. "info" or "cocoon_proxy=debug". Also read from
    /// COCOON_LOG.
    #[arg(long, global = true, env = "COCOON_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a proxy, a worker and a client on loopback, in one process.
    Devnet(devnet::DevnetArgs),
    /// Run a proxy: accepts workers and clients, routes requests, keeps the books.
    Proxy {
        /// TOML config (see docs/configuration.md; `cocoon devnet` writes an example).
        #[arg(long, short)]
        config: PathBuf,
        /// Override the config's [tee] kind: `tdx` inside a TD guest, `fake` for development.
        #[arg(long, value_enum)]
        tee: Option<attest::TeeChoice>,
    },
    /// Run a worker: serves a model from an OpenAI-compatible backend to its proxies.
    Worker {
        /// TOML config.
        #[arg(long, short)]
        config: PathBuf,
        /// Override the config's backend_url (vLLM, SGLang, llama.cpp server, Ollama...).
        #[arg(long, conflicts_with = "model")]
        backend: Option<String>,
        /// Serve this model with the built-in engine instead of a backend: a Llama/Qwen2/Qwen3
        /// GGUF file, or a known model's name (pulled into the cache if needed). Replaces the
        /// config's backend_url and model.
        #[arg(long)]
        model: Option<String>,
        /// Override the config's [tee] kind: `tdx` inside a TD guest, `fake` for development.
        #[arg(long, value_enum)]
        tee: Option<attest::TeeChoice>,
    },
    /// RA-TLS certificates: generate, inspect, probe a live port.
    #[command(subcommand)]
    Attest(attest::AttestCommand),
    /// Signed receipts of sealed requests: verify one and print what it proves.
    #[command(subcommand)]
    Receipt(receipt::ReceiptCommand),
    /// Benchmarks that print figures (the relay benchmark is bench/relay.sh).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Balances and contract actions on the devnet's chain: status, top-up, increase-stake,
    /// withdraw, close, payout.
    Wallet(wallet::WalletArgs),
    /// The root contract's owner operations: register, update and unregister proxies; allow
    /// or drop proxy images, worker images and models; status. On the devnet's chain or,
    /// with --network, on toncenter or mainnet (sends only with --yes).
    Root(root::RootArgs),
    /// Models for the built-in engine: pull (with a progress bar, SHA-256 checked), list.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Run a client: an OpenAI-compatible API on localhost backed by the network.
    Client {
        /// TOML config.
        #[arg(long, short)]
        config: PathBuf,
        /// Override the API port (default 10000).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Run a Telegram bot that answers chats with models on the network, through a client's
    /// OpenAI-compatible API (long polling; no webhook, no public port).
    TelegramBot(telegram::TelegramBotArgs),
    /// Serve the deterministic mock OpenAI backend (what `cocoon devnet` uses without
    /// --backend), e.g. to try a standalone worker.
    MockBackend {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: std::net::SocketAddr,
        /// Model name to serve.
        #[arg(long, default_value = "mock-model")]
        model: String,
        /// Completion tokens per answer.
        #[arg(long, default_value_t = 8)]
        tokens: usize,
        /// Milliseconds between streamed tokens.
        #[arg(long, default_value_t = 0)]
        token_delay_ms: u64,
    },
}

fn init_logging(filter: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid log filter '{filter}'"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit, for every subcommand:
/// a proxy with a thousand workers holds a socket per worker and per client, beyond the usual
/// soft 1,024. Returns the (soft, hard) limits now in force, `None` when they cannot be read.
pub(crate) fn raise_fd_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot read RLIMIT_NOFILE");
        return None;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot raise RLIMIT_NOFILE");
        }
    }
    tracing::debug!(
        before,
        soft = limit.rlim_cur,
        hard = limit.rlim_max,
        "open-file limit (RLIMIT_NOFILE)"
    );
    Some((limit.rlim_cur, limit.rlim_max))
}

/// Reads and parses a TOML config, naming the file and every problem.
pub(crate) fn load_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid config {}:\n{e}", path.display()))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = init_logging(&cli.log).and_then(|()| {
        raise_fd_limit();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(run(cli.command))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The cause chain on one line; no backtrace for configuration mistakes.
            eprintln!("error: {}", one_line(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text the message
/// before it already ends with (many errors print their source themselves).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Devnet(args) => devnet::run(args).await,
        Command::Attest(command) => attest::run(command).await,
        Command::Receipt(command) => receipt::run(command).await,
        Command::Bench(command) => bench::run(command).await,
        Command::Wallet(args) => wallet::run(args).await,
        Command::Root(args) => root::run(args).await,
        Command::Model(command) => model::run(command).await,
        Command::TelegramBot(args) => telegram::run(args).await,
        Command::Proxy { config, tee } => {
            let mut config: cocoon_proxy::ProxyConfig = load_config(&config)?;
            if let Some(tee) = tee {
                config.tee.kind = tee.kind();
            }
            let (trigger, shutdown) = ShutdownTrigger::new();
            let mut proxy = cocoon_proxy::start(config, shutdown).await?;
            println!(
                "proxy up: clients {} | workers {} | stats http://{}/stats",
                proxy.client_addr, proxy.worker_addr, proxy.http_addr
            );
            tokio::spawn(drain_on_signals(trigger));
            proxy.wait().await;
            Ok(())
        }
        Command::Worker {
            config,
            backend,
            model,
            tee,
        } => {
            let mut config: cocoon_worker::WorkerConfig = load_config(&config)?;
            if let Some(tee) = tee {
                config.tee.kind = tee.kind();
            }
            if let Some(backend) = backend {
                config.backend_url = backend;
            }
            // Kept alive as long as the worker runs.
            let _engine = match model {
                Some(model) => {
                    let (server, weights_file) = model::start_engine(&model).await?;
                    config.backend_url = server.url();
                    config.model = server.model.clone();
                    // The claims carry the digest of the file the engine loaded.
                    config.weights_file = Some(weights_file);
                    config.weights_digest = None;
                    Some(server)
                }
                None => None,
            };
            let (trigger, shutdown) = ShutdownTrigger::new();
            let mut worker = cocoon_worker::start(config, shutdown).await?;
            println!("worker up: stats http://{}/stats", worker.http_addr);
            tokio::spawn(drain_on_signals(trigger));
            worker.wait().await;
            Ok(())
        }
        Command::MockBackend {
            listen,
            model,
            tokens,
            token_delay_ms,
        } => {
            let config = cocoon_devnet::MockBackendConfig {
                models: vec![model],
                chunk_count: tokens,
                chunk_delay: std::time::Duration::from_millis(token_delay_ms),
                ..cocoon_devnet::MockBackendConfig::default()
            };
            let backend = cocoon_devnet::MockBackend::start_on(config, listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!("mock backend up: {}/v1", backend.url());
            let (trigger, shutdown) = ShutdownTrigger::new();
            tokio::spawn(drain_on_signals(trigger));
            shutdown.draining().await;
            backend.stop().await;
            Ok(())
        }
        Command::Client { config, port } => {
            let mut config: cocoon_client::ClientConfig = load_config(&config)?;
            if let Some(port) = port {
                config.listen.set_port(port);
            }
            let (trigger, shutdown) = ShutdownTrigger::new();
            let mut client = cocoon_client::start(config, shutdown).await?;
            println!("client up: OpenAI API at {}", client.base_url());
            tokio::spawn(drain_on_signals(trigger));
            client.wait().await;
            Ok(())
        }
    }
}
