//! `cocoon receipt verify`: what a worker's signed receipt proves, checked on its own.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use cocoon_attest::hex;
use cocoon_attest::receipt::{ChargeBody, Receipt, Signed, Statement};
use cocoon_client::ClientConfig;

#[derive(Subcommand, Debug)]
pub enum ReceiptCommand {
    /// Check a worker's signed receipt of a sealed request (the `X-Cocoon-Receipt` header, or
    /// a stream's `cocoon_receipt`) and print what it proves: which worker, model, request and
    /// answer, and the tokens it states. Exits non-zero when the receipt does not verify, the
    /// charge is above it, or (with --config) the worker's attestation is not acceptable.
    Verify(VerifyReceiptArgs),
}

#[derive(Args, Debug)]
pub struct VerifyReceiptArgs {
    /// The receipt's base64, a file that holds it, or `-` to read it from standard input.
    receipt: String,
    /// A client config: judge the worker's certificate with its `worker_policy` (or, without
    /// one, its `proxy_policy`), as that client does before sealing, as of the receipt's time.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The tokens the proxy charged for the request: refused when above the receipt's total.
    #[arg(long, conflicts_with = "charge")]
    charged: Option<u64>,
    /// The proxy's signed charge for the request (`X-Cocoon-Charge`, a stream's
    /// `cocoon_charge`; base64 or a file): checked against the receipt, so a charge above it
    /// is an over-charge signed by the proxy.
    #[arg(long)]
    charge: Option<String>,
    #[command(flatten)]
    verify: crate::attest::VerifyArgs,
}

pub async fn run(command: ReceiptCommand) -> Result<()> {
    match command {
        ReceiptCommand::Verify(args) => verify(args).await,
    }
}

fn read_receipt(arg: &str) -> Result<Receipt> {
    read_statement(arg)
}

/// A signed statement from its base64, a file holding it, or `-` (standard input).
fn read_statement<B: Statement>(arg: &str) -> Result<Signed<B>> {
    let text = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the receipt from standard input")?;
        text
    } else if std::path::Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read {arg}"))?
    } else {
        arg.to_string()
    };
    Signed::from_base64(&text).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn verify(args: VerifyReceiptArgs) -> Result<()> {
    let receipt = read_receipt(&args.receipt)?;
    let body = &receipt.body;
    let signed_at = receipt.signed_at();
    println!("receipt ({} bytes)", receipt.to_bytes().len());
    let signature = receipt.verify_signature();
    match &signature {
        Ok(()) => println!("  signature        valid: the worker key below signed every field"),
        Err(error) => println!("  signature        REFUSED: {error}"),
    }
    println!("  worker key       {}", hex(&body.worker_key));
    println!("  model            {}", body.model);
    println!("  request id       {}", hex(&body.client_request_id));
    println!(
        "  request hash     {} (SHA-256 of the sealed request)",
        hex(&body.request_hash)
    );
    println!(
        "  answer hash      {} (salted: only the client that sealed the request can recompute it)",
        hex(&body.answer_hash)
    );
    let t = &body.tokens;
    println!(
        "  tokens           prompt {}, cached {}, completion {}, reasoning {}, total {} (as billed)",
        t.prompt, t.cached, t.completion, t.reasoning, t.total
    );
    println!(
        "  coefficient      {:.3}×",
        f64::from(body.coefficient) / 1000.0
    );
    println!(
        "  finished         {} (unix), {}",
        body.finished_at,
        age(body.finished_at)
    );
    let mut failed = signature.is_err();
    if let Some(charged) = args.charged {
        if charged > t.total {
            println!(
                "  charge           OVER-CHARGED: {charged} tokens charged, the receipt states {}",
                t.total
            );
            failed = true;
        } else {
            println!("  charge           {charged} tokens charged: covered by the receipt");
        }
    }
    if let Some(text) = &args.charge {
        let charge = read_statement::<ChargeBody>(text)?;
        let b = &charge.body;
        println!("charge ({} bytes)", charge.to_bytes().len());
        match charge.verify_signature() {
            Ok(()) => println!("  signature        valid: the proxy key below signed every field"),
            Err(error) => {
                println!("  signature        REFUSED: {error}");
                failed = true;
            }
        }
        println!("  proxy key        {}", hex(&b.proxy_key));
        println!(
            "  tokens charged   total {} (prompt {}, completion {})",
            b.tokens.total, b.tokens.prompt, b.tokens.completion
        );
        println!("  charged          {} (unix)", b.charged_at);
        match charge.check_against(&receipt, b.tokens.total, None) {
            Ok(()) => {
                println!("  against receipt  covered: names this receipt, at most its tokens")
            }
            Err(error) => {
                println!("  against receipt  REFUSED: {error}");
                failed = true;
            }
        }
    }
    println!("worker certificate (as it was when it signed)");
    let mut verify_args = args.verify;
    verify_args.now = verify_args.now.or(Some(body.finished_at));
    if let Err(error) = crate::attest::inspect_bytes(&receipt.certificate, &verify_args) {
        println!("  REFUSED: {error}");
        failed = true;
    }
    match &args.config {
        Some(path) => {
            let config: ClientConfig = crate::load_config(path)?;
            let (name, policy) = match &config.worker_policy {
                Some(policy) => ("worker_policy", policy.clone()),
                None => ("proxy_policy", config.proxy_policy.clone()),
            };
            let built = policy
                .build()
                .with_context(|| format!("{}: {name}", path.display()))?;
            let mut verdict = built.policy.verify_peer(&receipt.certificate, signed_at);
            // A quote whose platform's collateral is not fetched yet: fetch it once, then judge.
            if let (Err(_), Some(fetcher)) = (&verdict, &built.fetcher) {
                let facts = cocoon_attest::parse_certificate(&receipt.certificate, signed_at);
                if let Some(quote) = facts.ok().and_then(|f| f.quote) {
                    match fetcher.fetch_now(&quote).await {
                        Ok(_) => {
                            verdict = built.policy.verify_peer(&receipt.certificate, signed_at)
                        }
                        Err(error) => println!("  collateral       not fetched: {error}"),
                    }
                }
            }
            println!("attestation ({name} of {})", path.display());
            match verdict {
                Ok(peer) => println!(
                    "  acceptable       yes, under policy {}{}",
                    peer.policy,
                    peer.image_hash
                        .map(|h| format!(" (image {})", hex(&h)))
                        .unwrap_or_default()
                ),
                Err(error) => {
                    println!("  acceptable       NO: {error}");
                    failed = true;
                }
            }
        }
        None => println!(
            "attestation      not judged: pass --config CLIENT.toml to check the worker against a client's policy"
        ),
    }
    if failed {
        bail!("the receipt does not hold");
    }
    Ok(())
}

fn age(finished_at: u64) -> String {
    let then = UNIX_EPOCH + Duration::from_secs(finished_at);
    match std::time::SystemTime::now().duration_since(then) {
        Ok(ago) => format!("{} s ago", ago.as_secs()),
        Err(_) => "IN THE FUTURE (the worker's clock is ahead)".into(),
    }
}
