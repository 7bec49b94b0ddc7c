//! `cocoon bench seal`: what sealing a request to its worker and its answer back costs
//! (`cocoon_attest::sealed`), what the worker's signed receipt costs, what the client pays to
//! check a worker's certificate before sealing to it (cold and cached), and what a handshake
//! costs with and without attestation: each next to the same work unsealed or unattested, in
//! one run.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use cocoon_attest::dcap::{CollateralSource, DcapVerifier, TcbPolicy};
use cocoon_attest::policy::{danger, AllowLists, AttestedPeer};
use cocoon_attest::provider::danger::{FakeTdx, ReplayQuote};
use cocoon_attest::provider::NoTee;
use cocoon_attest::receipt::{
    request_hash, Expected, Receipt, ReceiptBody, ReceiptSigner, ReceiptTokens,
};
use cocoon_attest::sealed::{seal_request, Padding, RequestContext, WorkerKey};
use cocoon_attest::{
    generate_identity, generate_identity_with_extras, model_hash, AttestError, AttestationPolicy,
    ClaimsExtras, RaTlsIdentity,
};
use cocoon_net::policy::danger::AcceptAnySelfSigned;
use cocoon_net::{Acceptor, Connector, PeerIdentity, PeerPolicy, PolicyError};

#[derive(Args, Debug)]
pub struct SealBenchArgs {
    /// Requests sealed and opened for the per-request figures (also receipts signed and
    /// checked).
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// MiB of answer sealed and opened per stream configuration.
    #[arg(long, default_value_t = 8)]
    mib: usize,
    /// Certificate checks per row of the client's quote checks (ten times as many for the
    /// cached row).
    #[arg(long, default_value_t = 500)]
    checks: usize,
    /// Sequential handshakes per row on loopback.
    #[arg(long, default_value_t = 500)]
    handshakes: usize,
    /// Seconds at most per row of receipts, checks and handshakes: a row stops at its count or
    /// when this is spent, whichever comes first (the table says how many it did).
    #[arg(long, default_value_t = 2.0)]
    row_seconds: f64,
    /// A real TDX quote (default: the dcap-qvl v4 sample shipped in the repository).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../cocoon-attest/tests/fixtures/tdx_quote"))]
    quote: PathBuf,
    /// Collateral directory for that quote.
    #[arg(long, default_value = crate::bench::FIXTURES)]
    collateral: PathBuf,
    /// Unix time inside the collateral's validity (the sample's is June–July 2025).
    #[arg(long, default_value_t = 1_751_328_000)]
    now: u64,
}

/// The model a bench worker's claims and receipts name.
const MODEL: &str = "SmolLM2-135M-Instruct";

fn per_second(count: f64, started: Instant) -> f64 {
    count / started.elapsed().as_secs_f64()
}

/// Runs `f` with logging off: the fake TEE and `danger` policies warn each time one is made,
/// and the cold rows make one per sample.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), f)
}

/// Timings of one row.
struct Samples(Vec<Duration>);

impl Samples {
    /// `count` timed runs of `measure`, each on a fresh value from `setup` (made outside the
    /// timing), stopping early once `limit` is spent (after at least one run).
    fn take<S>(
        count: usize,
        limit: Duration,
        mut setup: impl FnMut() -> Result<S>,
        mut measure: impl FnMut(S) -> Result<()>,
    ) -> Result<Samples> {
        let started = Instant::now();
        let mut samples = Vec::with_capacity(count);
        while samples.len() < count.max(1) && (samples.is_empty() || started.elapsed() < limit) {
            let state = setup()?;
            let start = Instant::now();
            measure(state)?;
            samples.push(start.elapsed());
        }
        Ok(Samples(samples))
    }

    fn count(&self) -> usize {
        self.0.len()
    }

    fn mean_us(&self) -> f64 {
        self.0.iter().sum::<Duration>().as_secs_f64() * 1e6 / self.0.len() as f64
    }

    fn per_second(&self) -> f64 {
        1e6 / self.mean_us()
    }

    fn quantile_us(&self, q: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6
    }
}

pub async fn run(args: SealBenchArgs) -> Result<()> {
    let worker = WorkerKey::generate();
    let limit = Duration::try_from_secs_f64(args.row_seconds)
        .map_err(|_| anyhow!("--row-seconds must be a number of seconds, 0 or more"))?;
    let quote = std::fs::read(&args.quote)
        .with_context(|| format!("cannot read {}", args.quote.display()))?;
    let quote_now = UNIX_EPOCH + Duration::from_secs(args.now);
    let now = SystemTime::now();
    // A worker's certificate as the devnet makes it (fake TDX) and one carrying the real
    // sample quote, made at the sample's time so it is valid where the collateral is; both
    // with the claims a sealing worker has (its HPKE key and model hash).
    let extras = ClaimsExtras {
        sealing_key: Some(worker.public_key()),
        model_hash: Some(model_hash(MODEL)),
        weights_digest: None,
    };
    let fake_worker = quietly(|| {
        generate_identity_with_extras(&FakeTdx::new(None), None, "bench-worker", now, &extras)
    })?;
    let real_worker = generate_identity_with_extras(
        &ReplayQuote(quote),
        None,
        "bench-worker",
        quote_now,
        &extras,
    )?;
    let dcap = |cache: Option<usize>| {
        let verifier = DcapVerifier::new(
            CollateralSource::Directory(args.collateral.clone()),
            TcbPolicy::default(),
        );
        let verifier = match cache {
            Some(entries) => verifier.with_cache_capacity(entries),
            None => verifier,
        };
        AttestationPolicy::tdx(verifier, AllowLists::default())
    };
    // Check the inputs before timing anything.
    sample_quote_outcome(dcap(Some(0)).check(&real_worker.tls.cert_der, quote_now))
        .context("the quote does not verify with that collateral at --now")?;

    requests(&args, &worker)?;
    answers(&args, &worker)?;
    receipts(&args, limit, &fake_worker, &real_worker, now)?;
    checks(
        &args,
        limit,
        &fake_worker,
        &real_worker,
        now,
        quote_now,
        &dcap,
    )?;
    handshakes(
        &args,
        limit,
        &fake_worker,
        &real_worker,
        now,
        quote_now,
        &dcap,
    )
    .await
}

/// Per request: the client seals a 1 KiB body, the worker opens it.
fn requests(args: &SealBenchArgs, worker: &WorkerKey) -> Result<()> {
    let public = worker.public_key();
    let context = RequestContext {
        model: MODEL,
        request_id: [7; 32],
    };
    let body = vec![b'x'; 1024];
    println!(
        "sealed requests: HPKE X25519-HKDF-SHA256 / ChaCha20-Poly1305, 1 KiB body, {} requests",
        args.requests
    );
    let started = Instant::now();
    for _ in 0..args.requests {
        black_box(body.to_vec());
    }
    let plain = started.elapsed().as_secs_f64() * 1e6 / args.requests as f64;
    let started = Instant::now();
    let mut sealed_all = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        sealed_all.push(seal_request(&public, &context, &body)?.0);
    }
    let seal = started.elapsed().as_secs_f64() * 1e6 / args.requests as f64;
    let started = Instant::now();
    for sealed in &sealed_all {
        black_box(worker.open_request(&context, sealed)?);
    }
    let open = started.elapsed().as_secs_f64() * 1e6 / args.requests as f64;
    println!("{:<28} {:>12}", "path", "µs/request");
    println!("{:<28} {:>12.2}", "unsealed (copy the body)", plain);
    println!("{:<28} {:>12.2}", "client: seal", seal);
    println!("{:<28} {:>12.2}", "worker: open", open);
    println!(
        "overhead on the wire: {} bytes per request",
        sealed_all[0].len() - body.len()
    );
    Ok(())
}

/// Per MB of answer: the worker seals pieces, the client opens them.
fn answers(args: &SealBenchArgs, worker: &WorkerKey) -> Result<()> {
    let public = worker.public_key();
    let context = RequestContext {
        model: MODEL,
        request_id: [7; 32],
    };
    let total = args.mib << 20;
    println!();
    println!(
        "sealed answers: {} MiB per row, sealed by the worker and opened by the client",
        args.mib
    );
    println!(
        "{:<40} {:>10} {:>12} {:>10}",
        "pieces", "MB/s", "ns/piece", "wire/data"
    );
    for (label, piece, padding) in [
        ("64 B (a token), unsealed", 64, None),
        (
            "64 B (a token), padded to 256 B",
            64,
            Some(Padding::default()),
        ),
        ("64 B (a token), no padding", 64, Some(Padding::None)),
        ("16 KiB, unsealed", 16 << 10, None),
        ("16 KiB, padded", 16 << 10, Some(Padding::default())),
    ] {
        let data = vec![b'y'; piece];
        let pieces = total / piece;
        let (wire_bytes, rate) = match padding {
            None => {
                let started = Instant::now();
                let mut out = Vec::new();
                for _ in 0..pieces {
                    out.clear();
                    out.extend_from_slice(&data);
                    black_box(&out);
                }
                (total, per_second(total as f64, started))
            }
            Some(padding) => {
                let (request, mut opener) = seal_request(&public, &context, b"q")?;
                let (_, sealer) = worker.open_request(&context, &request)?;
                let mut sealer = sealer.with_padding(padding);
                let started = Instant::now();
                let mut wire = Vec::new();
                let mut opened = Vec::new();
                let mut wire_bytes = 0;
                for i in 0..pieces {
                    wire.clear();
                    opened.clear();
                    sealer.seal(&data, i + 1 == pieces, &mut wire);
                    wire_bytes += wire.len();
                    opener.push(&wire, &mut opened)?;
                }
                opener.finish()?;
                (wire_bytes, per_second(total as f64, started))
            }
        };
        println!(
            "{:<40} {:>10.0} {:>12.0} {:>10.2}",
            label,
            rate / 1e6,
            1e9 * piece as f64 / rate,
            wire_bytes as f64 / total as f64
        );
    }
    Ok(())
}

/// Per sealed request: the worker signs a receipt, the client decodes and checks it.
fn receipts(
    args: &SealBenchArgs,
    limit: Duration,
    fake_worker: &RaTlsIdentity,
    real_worker: &RaTlsIdentity,
    now: SystemTime,
) -> Result<()> {
    println!();
    println!(
        "receipts: the worker signs one per sealed request (Ed25519, its certificate appended), the client decodes and checks it; up to {} per row",
        args.requests
    );
    println!(
        "{:<56} {:>7} {:>12} {:>12}",
        "path", "n", "µs/request", "wire bytes"
    );
    println!(
        "{:<56} {:>7} {:>12.2} {:>12}",
        "unsealed (no receipt)", "-", 0.0, 0
    );
    for (label, identity, at) in [
        (
            "fake TDX certificate (devnet)",
            fake_worker,
            now.duration_since(UNIX_EPOCH)?.as_secs(),
        ),
        ("TDX certificate (sample quote)", real_worker, args.now),
    ] {
        let signer = ReceiptSigner::new(&identity.tls)?;
        let body = ReceiptBody {
            worker_key: [0; 32],
            client_request_id: [7; 32],
            request_hash: request_hash(&[b'x'; 1100]),
            answer_hash: [9; 32],
            model: MODEL.to_string(),
            tokens: ReceiptTokens {
                prompt: 20,
                cached: 0,
                completion: 128,
                reasoning: 0,
                total: 148,
            },
            coefficient: 1000,
            // Inside the certificate's validity, as a worker's receipt is.
            finished_at: at,
        };
        let mut expected = Expected {
            worker_key: signer.public_key(),
            worker_certificate: None,
            sealing_key: cocoon_attest::sealing_key_of(
                &identity.tls.cert_der,
                UNIX_EPOCH + Duration::from_secs(at),
            )
            .ok_or_else(|| anyhow!("the bench worker's certificate carries no sealing key"))?,
            client_request_id: body.client_request_id,
            request_hash: body.request_hash,
            answer_hash: body.answer_hash,
            model: MODEL,
            billed_total: 148,
        };
        let wire = signer.sign(body.clone()).to_bytes();
        Receipt::from_bytes(&wire)?.check_for(&expected)?;
        let sign = Samples::take(
            args.requests,
            limit,
            || Ok(body.clone()),
            |body| {
                black_box(signer.sign(body).to_bytes());
                Ok(())
            },
        )?;
        let check = Samples::take(
            args.requests,
            limit,
            || Ok(()),
            |()| Ok(Receipt::from_bytes(&wire)?.check_for(&expected)?),
        )?;
        // What the client does: the receipt's certificate is the one it verified before
        // sealing, so only the signature is checked.
        expected.worker_certificate = Some(&identity.tls.cert_der);
        let known = Samples::take(
            args.requests,
            limit,
            || Ok(()),
            |()| Ok(Receipt::from_bytes(&wire)?.check_for(&expected)?),
        )?;
        println!(
            "{:<56} {:>7} {:>12.2} {:>12}",
            format!("worker: sign + encode, {label}"),
            sign.count(),
            sign.mean_us(),
            wire.len()
        );
        println!(
            "{:<56} {:>7} {:>12.2} {:>12}",
            format!("client: decode + check, {label}"),
            check.count(),
            check.mean_us(),
            wire.len()
        );
        println!(
            "{:<56} {:>7} {:>12.2} {:>12}",
            "  the same, certificate known (what the client does)",
            known.count(),
            known.mean_us(),
            wire.len()
        );
    }
    Ok(())
}

/// The `tdx` policy's verdict on a certificate carrying the sample quote: the sample was made
/// for another key, so a quote that verifies ends at the report-data binding, the policy's
/// last step before the allow-lists (which, empty here, accept anything).
fn sample_quote_outcome(outcome: Result<AttestedPeer, AttestError>) -> Result<()> {
    match outcome {
        Err(AttestError::ReportDataMismatch) => Ok(()),
        Ok(_) => bail!("the sample quote unexpectedly matched the bench certificate's key"),
        Err(error) => Err(anyhow!(error)),
    }
}

/// What the client pays per listed worker before sealing to it (`cocoon-client`'s
/// `Sealer::verify`): the worker policy's check, then two claim reads.
fn checks(
    args: &SealBenchArgs,
    limit: Duration,
    fake_worker: &RaTlsIdentity,
    real_worker: &RaTlsIdentity,
    now: SystemTime,
    quote_now: SystemTime,
    dcap: &dyn Fn(Option<usize>) -> AttestationPolicy,
) -> Result<()> {
    let fake_cert = &fake_worker.tls.cert_der;
    let real_cert = &real_worker.tls.cert_der;
    let fake_policy = || Ok(quietly(|| danger::fake_tdx(AllowLists::default())));
    println!();
    println!(
        "client-side certificate checks: the worker policy on one listed worker's certificate, up to {} per row",
        args.checks
    );
    println!(
        "{:<60} {:>7} {:>10} {:>10}",
        "check", "n", "µs/check", "µs p50"
    );
    let mut rows: Vec<(&str, Samples)> = Vec::new();
    let any = AcceptAnySelfSigned;
    rows.push((
        "unattested (danger_any: self-signed check only)",
        Samples::take(
            args.checks,
            limit,
            || Ok(()),
            |()| {
                any.verify_peer(fake_cert, now)?;
                Ok(())
            },
        )?,
    ));
    rows.push((
        "fake TDX, cold (a new policy each check)",
        Samples::take(args.checks, limit, fake_policy, |policy| {
            policy.check(fake_cert, now)?;
            Ok(())
        })?,
    ));
    let policy = fake_policy()?;
    rows.push((
        "fake TDX, again (the same policy; it keeps no cache)",
        Samples::take(
            args.checks,
            limit,
            || Ok(()),
            |()| {
                policy.check(fake_cert, now)?;
                Ok(())
            },
        )?,
    ));
    rows.push((
        "after any policy: the claim reads (model hash, sealing key)",
        Samples::take(
            args.checks,
            limit,
            || Ok(()),
            |()| {
                cocoon_attest::check_claimed_model(fake_cert, now, MODEL)
                    .map_err(|e| anyhow!(e))?;
                cocoon_attest::sealing_key_of(fake_cert, now)
                    .ok_or_else(|| anyhow!("no sealing key"))?;
                Ok(())
            },
        )?,
    ));
    rows.push((
        "TDX + DCAP, first check of a new policy (loads collateral)",
        Samples::take(
            args.checks,
            limit,
            || Ok(dcap(None)),
            |policy| sample_quote_outcome(policy.check(real_cert, quote_now)),
        )?,
    ));
    let cold = dcap(Some(0));
    rows.push((
        "TDX + DCAP, cold (cache off: a quote not seen before)",
        Samples::take(
            args.checks,
            limit,
            || Ok(()),
            |()| sample_quote_outcome(cold.check(real_cert, quote_now)),
        )?,
    ));
    let cached = dcap(None);
    sample_quote_outcome(cached.check(real_cert, quote_now))?;
    rows.push((
        "TDX + DCAP, cached (the same policy, the same quote again)",
        Samples::take(
            args.checks * 10,
            limit,
            || Ok(()),
            |()| sample_quote_outcome(cached.check(real_cert, quote_now)),
        )?,
    ));
    for (label, samples) in &rows {
        println!(
            "{:<60} {:>7} {:>10.2} {:>10.2}",
            label,
            samples.count(),
            samples.mean_us(),
            samples.quantile_us(0.5)
        );
    }
    println!("note: the sample quote was made for another key, so the tdx rows end at the report-data binding (a 64-byte compare, after DCAP); everything else the client's tdx policy does is timed");
    Ok(())
}

/// The client's `tdx` policy on the sample quote's certificate, for handshakes: it runs the
/// policy's whole check and accepts the one refusal a sample made for another key must get.
#[derive(Debug)]
struct SampleQuoteTdx {
    policy: AttestationPolicy,
    quote_now: SystemTime,
    public_key: [u8; 32],
}

impl PeerPolicy for SampleQuoteTdx {
    fn name(&self) -> &'static str {
        "bench_tdx_sample"
    }
    fn verify_peer(&self, cert_der: &[u8], _now: SystemTime) -> Result<PeerIdentity, PolicyError> {
        sample_quote_outcome(self.policy.check(cert_der, self.quote_now))
            .map_err(|e| PolicyError::Refused(e.to_string()))?;
        Ok(PeerIdentity {
            public_key: self.public_key,
            image_hash: None,
            policy: "bench_tdx_sample",
            certificate: Default::default(),
        })
    }
}

/// Policies for one handshake: the server's (judging the client), the client's.
type Policies<'a> = Box<dyn Fn() -> (Arc<dyn PeerPolicy>, Arc<dyn PeerPolicy>) + 'a>;

/// Handshakes taken between rows, in turn, so that a swing in the machine's load (other
/// processes on a shared machine) falls on every row alike rather than on one.
const HANDSHAKES_PER_TURN: usize = 20;

/// One row of sequential handshakes on loopback (TCP, TLS 1.3 with both certificates checked,
/// `tcp.connect`), PoW off; with `fresh`, new endpoints and policies before each (made outside
/// the timing), so nothing from an earlier handshake is reused.
struct HandshakeRow<'a> {
    label: &'static str,
    server: &'a RaTlsIdentity,
    client: &'a RaTlsIdentity,
    policies: Policies<'a>,
    fresh: bool,
    /// The endpoints of the last handshake, reused unless `fresh`.
    endpoints: Option<(Acceptor, Connector)>,
    /// Time spent on this row so far, setup included, for `--row-seconds`.
    spent: Duration,
    samples: Vec<Duration>,
}

impl<'a> HandshakeRow<'a> {
    fn new(
        label: &'static str,
        server: &'a RaTlsIdentity,
        client: &'a RaTlsIdentity,
        policies: Policies<'a>,
        fresh: bool,
    ) -> HandshakeRow<'a> {
        HandshakeRow {
            label,
            server,
            client,
            policies,
            fresh,
            endpoints: None,
            spent: Duration::ZERO,
            samples: Vec::new(),
        }
    }

    fn done(&self, count: usize, limit: Duration) -> bool {
        self.samples.len() >= count.max(1) || (!self.samples.is_empty() && self.spent >= limit)
    }

    fn endpoints(&self) -> Result<(Acceptor, Connector)> {
        let (server_policy, client_policy) = (self.policies)();
        // No proof of work: the bench measures TLS and attestation, not the anti-DoS gate.
        Ok((
            Acceptor::new(&self.server.tls, server_policy, 0)?,
            Connector::new(&self.client.tls, client_policy, 0)?,
        ))
    }

    /// Up to `turn` more handshakes, stopping when the row is done.
    async fn take(
        &mut self,
        listener: &tokio::net::TcpListener,
        turn: usize,
        count: usize,
        limit: Duration,
    ) -> Result<()> {
        let address = listener.local_addr()?.to_string();
        let started = Instant::now();
        let spent_before = self.spent;
        for _ in 0..turn {
            if self.done(count, limit) {
                break;
            }
            let (acceptor, connector) = match self.endpoints.take() {
                Some(endpoints) if !self.fresh => endpoints,
                _ => self.endpoints()?,
            };
            let server = async {
                let (socket, _) = listener.accept().await?;
                acceptor.accept(socket).await.map_err(anyhow::Error::from)
            };
            let start = Instant::now();
            let (server, client) = tokio::join!(server, connector.connect(&address));
            let client = client.with_context(|| format!("client handshake, {}", self.label))?;
            self.samples.push(start.elapsed());
            server.with_context(|| format!("server handshake, {}", self.label))?;
            client.handle.close("bench");
            self.endpoints = Some((acceptor, connector));
            self.spent = spent_before + started.elapsed();
        }
        Ok(())
    }
}

/// Handshakes with and without attestation, cold and cached.
async fn handshakes(
    args: &SealBenchArgs,
    limit: Duration,
    fake_worker: &RaTlsIdentity,
    real_worker: &RaTlsIdentity,
    now: SystemTime,
    quote_now: SystemTime,
    dcap: &dyn Fn(Option<usize>) -> AttestationPolicy,
) -> Result<()> {
    let plain_server = generate_identity(&NoTee, "bench-server", now)?;
    let plain_client = generate_identity(&NoTee, "bench-client", now)?;
    let fake_client = quietly(|| generate_identity(&FakeTdx::new(None), "bench-client", now))?;
    let any = || -> Arc<dyn PeerPolicy> { Arc::new(AcceptAnySelfSigned) };
    let fake =
        || -> Arc<dyn PeerPolicy> { quietly(|| Arc::new(danger::fake_tdx(AllowLists::default()))) };
    let sample_tdx = |cache: Option<usize>| -> Arc<dyn PeerPolicy> {
        Arc::new(SampleQuoteTdx {
            policy: dcap(cache),
            quote_now,
            public_key: real_worker.tls.public_key,
        })
    };
    let cold = sample_tdx(Some(0));
    let warm = sample_tdx(None);
    warm.verify_peer(&real_worker.tls.cert_der, now)?;
    let row = HandshakeRow::new;
    let mut rows = vec![
        row(
            "unattested (danger_any both ways)",
            &plain_server,
            &plain_client,
            Box::new(|| (any(), any())),
            false,
        ),
        row(
            "fake TDX both ways, cold (new endpoints each)",
            fake_worker,
            &fake_client,
            Box::new(|| (fake(), fake())),
            true,
        ),
        row(
            "fake TDX both ways, again (the same endpoints)",
            fake_worker,
            &fake_client,
            Box::new(|| (fake(), fake())),
            false,
        ),
        row(
            "client checks TDX + DCAP, cold (cache off)",
            real_worker,
            &plain_client,
            Box::new(|| (any(), cold.clone())),
            false,
        ),
        row(
            "client checks TDX + DCAP, cached",
            real_worker,
            &plain_client,
            Box::new(|| (any(), warm.clone())),
            false,
        ),
    ];
    let n = args.handshakes;
    println!();
    println!("handshakes: up to {n} sequential per row on loopback (TCP + TLS 1.3 + tcp.connect, PoW off), the rows taking turns of {HANDSHAKES_PER_TURN}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    while rows.iter().any(|row| !row.done(n, limit)) {
        for row in &mut rows {
            row.take(&listener, HANDSHAKES_PER_TURN, n, limit).await?;
        }
    }
    println!(
        "{:<48} {:>6} {:>10} {:>10} {:>10} {:>10} {:>13}",
        "handshake", "n", "handsh./s", "µs mean", "µs p50", "µs p99", "p50 vs unatt"
    );
    let rows: Vec<(&str, Samples)> = rows
        .into_iter()
        .map(|row| (row.label, Samples(row.samples)))
        .collect();
    let base = rows[0].1.quantile_us(0.5);
    for (label, samples) in &rows {
        let p50 = samples.quantile_us(0.5);
        println!(
            "{:<48} {:>6} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>+13.0}",
            label,
            samples.count(),
            samples.per_second(),
            samples.mean_us(),
            p50,
            samples.quantile_us(0.99),
            p50 - base
        );
    }
    Ok(())
}
