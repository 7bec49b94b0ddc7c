//! `cocoon attest`: make, read and probe RA-TLS certificates.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use cocoon_attest::cert::certificate_claims;
use cocoon_attest::dcap::{CollateralSource, DcapVerifier, TcbPolicy};
use cocoon_attest::provider::danger::parse_fake_quote;
use cocoon_attest::snp::{parse_report, ProductLine, SnpEvidence, SnpVerifier};
use cocoon_attest::tdx::parse_tdx_quote;
use cocoon_attest::{hex, TeeConfig, TeeKind};
use cocoon_net::policy::check_self_signed;
use cocoon_net::{Connector, PeerIdentity, PeerPolicy, PolicyError};

/// `cocoon attest …`
#[derive(Subcommand, Debug)]
pub enum AttestCommand {
    /// Generate an RA-TLS certificate and key (with a fresh quote from the TEE).
    GenCert(GenCertArgs),
    /// Print what a certificate (PEM or DER) or a raw quote file proves.
    Inspect(InspectArgs),
    /// Connect to a proxy or worker port (PoW + TLS) and print the peer's attestation.
    Probe(ProbeArgs),
}

/// The TEE to take evidence from.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TeeChoice {
    /// A fake TEE (development only).
    Fake,
    /// Intel TDX via configfs-tsm (inside a TD guest).
    Tdx,
    /// A fake AMD SEV-SNP report (development only).
    FakeSnp,
    /// AMD SEV-SNP via configfs-tsm (inside an SNP guest).
    SevSnp,
    /// No evidence.
    None,
}

impl TeeChoice {
    pub fn kind(self) -> TeeKind {
        match self {
            TeeChoice::Fake => TeeKind::DangerFake,
            TeeChoice::Tdx => TeeKind::Tdx,
            TeeChoice::FakeSnp => TeeKind::DangerFakeSnp,
            TeeChoice::SevSnp => TeeKind::SevSnp,
            TeeChoice::None => TeeKind::None,
        }
    }
}

#[derive(Args, Debug)]
pub struct GenCertArgs {
    /// Where the evidence comes from.
    #[arg(long, value_enum)]
    tee: TeeChoice,
    /// Name: the subject CN and the file name prefix.
    #[arg(long, default_value = "cocoon")]
    name: String,
    /// Directory to write NAME_cert.pem, NAME_key.pem and NAME_image_hash.hex into.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// With --tee fake: a fake MRTD (96 hex digits), to get a distinct image hash.
    #[arg(long)]
    fake_mrtd: Option<String>,
    /// Bind this model name's hash (SHA-256 of it) into the claims, as a worker serving it does.
    #[arg(long)]
    model: Option<String>,
    /// Bind this weights digest (64 hex digits: SHA-256 of the weights file, or a dm-verity
    /// root) into the claims, as a worker does.
    #[arg(long)]
    weights_digest: Option<String>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Directory of DCAP collateral JSON files: with it, TDX quotes are verified and their TCB
    /// status printed.
    #[arg(long)]
    collateral: Option<PathBuf>,
    /// Verify as of this Unix time instead of now (for old samples).
    #[arg(long)]
    pub now: Option<u64>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A certificate (PEM or DER) or a raw quote.
    file: PathBuf,
    #[command(flatten)]
    verify: VerifyArgs,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// HOST:PORT of a proxy's client or worker port.
    address: String,
    #[command(flatten)]
    verify: VerifyArgs,
    /// Largest proof-of-work to solve.
    #[arg(long, default_value_t = 28)]
    max_pow_difficulty: i32,
}

pub async fn run(command: AttestCommand) -> Result<()> {
    match command {
        AttestCommand::GenCert(args) => gen_cert(args),
        AttestCommand::Inspect(args) => {
            let bytes = std::fs::read(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            inspect_bytes(&bytes, &args.verify)
        }
        AttestCommand::Probe(args) => probe(args).await,
    }
}

fn gen_cert(args: GenCertArgs) -> Result<()> {
    let mut tee = TeeConfig::of(args.tee.kind());
    tee.danger_fake_mrtd = args.fake_mrtd.clone();
    let problems = tee.problems();
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let weights_digest = match &args.weights_digest {
        Some(text) => {
            let bytes =
                ::hex::decode(text.trim()).with_context(|| format!("--weights-digest {text}"))?;
            Some(<[u8; 32]>::try_from(bytes).map_err(|b| {
                anyhow::anyhow!(
                    "--weights-digest is {} bytes, expected 32 (64 hex digits)",
                    b.len()
                )
            })?)
        }
        None => None,
    };
    let extras = cocoon_attest::ClaimsExtras {
        sealing_key: None,
        model_hash: args.model.as_deref().map(cocoon_attest::model_hash),
        weights_digest,
    };
    let identity = tee.identity_with_extras(&args.name, &extras)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let cert_path = args.out.join(format!("{}_cert.pem", args.name));
    let key_path = args.out.join(format!("{}_key.pem", args.name));
    let hash_path = args.out.join(format!("{}_image_hash.hex", args.name));
    std::fs::write(
        &cert_path,
        pem::encode(&pem::Pem::new("CERTIFICATE", identity.tls.cert_der.clone())),
    )?;
    write_private(
        &key_path,
        pem::encode(&pem::Pem::new("PRIVATE KEY", identity.tls.key_der.clone())).as_bytes(),
    )?;
    let image_hash = identity
        .quote
        .as_deref()
        .and_then(|q| quote_measurements(q).map(|m| m.image_hash()))
        .or_else(|| {
            let evidence = SnpEvidence::decode(identity.snp_evidence.as_deref()?).ok()?;
            Some(parse_report(&evidence.report).ok()?.image_hash())
        });
    std::fs::write(
        &hash_path,
        image_hash.map(|h| hex(&h)).unwrap_or_default() + "\n",
    )?;
    println!("wrote {}", cert_path.display());
    println!("wrote {} (private key, mode 0600)", key_path.display());
    match image_hash {
        Some(hash) => println!("wrote {} (image hash {})", hash_path.display(), hex(&hash)),
        None => println!("wrote {} (empty: no quote)", hash_path.display()),
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    cocoon_net::secret_file::write_secret_file(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn quote_measurements(quote: &[u8]) -> Option<cocoon_attest::tdx::TdxMeasurements> {
    parse_fake_quote(quote)
        .map(|(_, m)| m)
        .or_else(|| parse_tdx_quote(quote).ok().map(|q| q.measurements))
}

fn now_of(args: &VerifyArgs) -> SystemTime {
    args.now
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or_else(SystemTime::now)
}

fn unix(secs: i64) -> String {
    format!("{secs} (unix)")
}

/// Prints a certificate's or a raw quote's attestation.
pub(crate) fn inspect_bytes(bytes: &[u8], args: &VerifyArgs) -> Result<()> {
    let der = if bytes.starts_with(b"-----BEGIN") {
        pem::parse(bytes).context("invalid PEM")?.into_contents()
    } else {
        bytes.to_vec()
    };
    let now = now_of(args);
    match check_self_signed(&der, now) {
        Ok((facts, unknown)) => {
            println!("certificate");
            println!("  public key       {}", hex(&facts.public_key));
            println!(
                "  valid            {} .. {}",
                unix(facts.not_before),
                unix(facts.not_after)
            );
            if !unknown.is_empty() {
                println!("  UNKNOWN CRITICAL {}", unknown.join(", "));
            }
            let claims = certificate_claims(&facts).map_err(|e| anyhow::anyhow!("{e}"))?;
            match &facts.quote {
                Some(quote) => {
                    print_quote(quote, args, now)?;
                    let bound = quote_report_data(quote) == Some(claims.report_data());
                    println!(
                        "  bound to key     {}",
                        if bound {
                            "yes (report data = SHA-512(claims))"
                        } else {
                            "NO: report data does not match this certificate"
                        }
                    );
                }
                None => match &facts.snp_evidence {
                    Some(evidence) => print_snp(evidence, &claims.report_data()),
                    None => println!("  quote            none (not attested)"),
                },
            }
            if let Some(key) = &claims.hpke_public_key {
                println!(
                    "  sealing key      {} (HPKE X25519: takes sealed requests)",
                    hex(key)
                );
            }
            if let Some(hash) = &claims.model_hash {
                println!(
                    "  model hash       {} (SHA-256 of the model name it serves)",
                    hex(hash)
                );
            }
            if let Some(digest) = &claims.weights_digest {
                println!(
                    "  weights digest   {} (SHA-256 of its weights file, or a dm-verity root)",
                    hex(digest)
                );
            }
            if let Some(extension) = &facts.gpu_evidence {
                print_gpus(extension, &claims, &facts.public_key, now);
            }
            Ok(())
        }
        Err(PolicyError::Malformed(_)) => {
            // Not a certificate: maybe a raw quote.
            print_quote(&der, args, now)
        }
        Err(error) => bail!("certificate refused: {error}"),
    }
}

/// Prints a certificate's AMD SEV-SNP evidence: the report's identity, whether AMD's pinned
/// chain and the VCEK's signature vouch for it (or that it is a fake), and its binding.
fn print_snp(bytes: &[u8], claims_report_data: &[u8; 64]) {
    let evidence = match SnpEvidence::decode(bytes) {
        Ok(evidence) => evidence,
        Err(error) => {
            println!("  SEV-SNP          MALFORMED: {error}");
            return;
        }
    };
    let report = match parse_report(&evidence.report) {
        Ok(report) => report,
        Err(error) => {
            println!("  SEV-SNP report   MALFORMED: {error}");
            return;
        }
    };
    let fake = matches!(evidence.kind, cocoon_attest::snp::EvidenceKind::DangerFake);
    println!(
        "  SEV-SNP report   version {}{}",
        report.version,
        if fake { " (FAKE: proves nothing)" } else { "" }
    );
    println!("  measurement      {}", hex(&report.measurement));
    println!("  image hash       {}", hex(&report.image_hash()));
    println!("  reported TCB     {}", report.reported_tcb);
    println!(
        "  guest policy     {:#x}{}",
        report.policy,
        match cocoon_attest::snp::check_guest_policy(&report) {
            Ok(()) => String::new(),
            Err(error) => format!(" ({error})"),
        }
    );
    if !fake {
        let checked = SnpVerifier::new(&ProductLine::ALL, None)
            .and_then(|verifier| verifier.verify_evidence(&evidence));
        match checked {
            Ok(verified) => println!(
                "  AMD chain        ok ({}: ARK -> ASK -> VCEK -> report signature)",
                verified.product_line
            ),
            Err(error) => println!("  AMD chain        REFUSED: {error}"),
        }
    }
    println!(
        "  bound to key     {}",
        if report.report_data == *claims_report_data {
            "yes (report data = SHA-512(claims))"
        } else {
            "NO: report data does not match this certificate"
        }
    );
}

/// Prints a certificate's GPU evidence: its binding, and per GPU the chain and signature check
/// and the measurement hash that `gpu_measurements` lists.
fn print_gpus(
    extension: &[u8],
    claims: &cocoon_attest::UserClaims,
    public_key: &[u8; 32],
    now: SystemTime,
) {
    use cocoon_attest::gpu::{
        check_evidence_hash, gpu_nonce, parse_report, GpuEvidence, GpuEvidenceKind, GpuVerifier,
    };
    println!("GPU evidence ({} bytes)", extension.len());
    match check_evidence_hash(extension, claims.gpu_evidence_hash.as_ref()) {
        Ok(()) => println!("  bound to claims  yes (claims carry SHA-256 of the evidence)"),
        Err(error) => println!("  bound to claims  NO: {error}"),
    }
    let evidence = match GpuEvidence::decode(extension) {
        Ok(evidence) => evidence,
        Err(error) => {
            println!("  MALFORMED        {error}");
            return;
        }
    };
    let fake = evidence.kind == GpuEvidenceKind::DangerFake;
    if fake {
        println!("  kind             FAKE (development only: proves nothing)");
    }
    let nonce = gpu_nonce(public_key);
    let verifier = GpuVerifier::new();
    for (gpu, attestation) in evidence.gpus.iter().enumerate() {
        match parse_report(gpu, &attestation.report) {
            Ok(report) => {
                println!(
                    "  GPU {gpu}            {} measurement blocks, measurement hash {}",
                    report.measurements.len(),
                    hex(&report.measurements_hash())
                );
                println!(
                    "    nonce          {}",
                    if report.requester_nonce == nonce {
                        "this certificate's key"
                    } else {
                        "NOT this certificate's key"
                    }
                );
            }
            Err(error) => println!("  GPU {gpu}            MALFORMED: {error}"),
        }
        if !fake {
            let checked = verifier
                .as_ref()
                .map_err(|e| e.clone())
                .and_then(|v| v.verify_gpu(gpu, attestation, &nonce, now));
            match checked {
                Ok(_) => println!("    NVIDIA chain   valid, report signature valid"),
                Err(error) => println!("    NVIDIA chain   FAILED: {error}"),
            }
        }
    }
}

fn quote_report_data(quote: &[u8]) -> Option<[u8; 64]> {
    parse_fake_quote(quote)
        .map(|(r, _)| r)
        .or_else(|| parse_tdx_quote(quote).ok().map(|q| q.report_data))
}

fn print_quote(quote: &[u8], args: &VerifyArgs, now: SystemTime) -> Result<()> {
    let (kind, version, tee_type, report_data, measurements) =
        if let Some((report_data, m)) = parse_fake_quote(quote) {
            (
                "FAKE (development only: proves nothing)".to_string(),
                None,
                None,
                report_data,
                m,
            )
        } else {
            let parsed = parse_tdx_quote(quote)
                .map_err(|e| anyhow::anyhow!("not a certificate and not a TDX quote: {e}"))?;
            (
                "Intel TDX".to_string(),
                Some(parsed.version),
                Some(parsed.tee_type),
                parsed.report_data,
                parsed.measurements,
            )
        };
    println!("quote ({} bytes)", quote.len());
    println!("  kind             {kind}");
    if let (Some(version), Some(tee_type)) = (version, tee_type) {
        println!("  version          {version}");
        println!("  TEE type         0x{tee_type:x}");
    }
    println!("  MRTD             {}", hex(&measurements.mrtd));
    for (i, rtmr) in measurements.rtmr.iter().enumerate() {
        println!("  RTMR{i}            {}", hex(rtmr));
    }
    println!("  report data      {}", hex(&report_data));
    println!("  image hash       {}", hex(&measurements.image_hash()));
    if version.is_some() {
        match &args.collateral {
            Some(dir) => {
                let verifier = DcapVerifier::new(
                    CollateralSource::Directory(dir.clone()),
                    inspect_tcb_policy(),
                );
                match verifier.verify(quote, now) {
                    Ok(verified) => {
                        println!("  DCAP             signature and chain valid");
                        println!("  TCB status       {}", verified.tcb_status);
                        if !verified.advisory_ids.is_empty() {
                            println!("  advisories       {}", verified.advisory_ids.join(", "));
                        }
                    }
                    Err(error) => println!("  DCAP             FAILED: {error}"),
                }
            }
            None => println!("  DCAP             not checked (pass --collateral DIR)"),
        }
    }
    Ok(())
}

/// `inspect` reports whatever status the quote has instead of refusing it.
fn inspect_tcb_policy() -> TcbPolicy {
    TcbPolicy {
        accepted_statuses: [
            "UpToDate",
            "SWHardeningNeeded",
            "ConfigurationNeeded",
            "ConfigurationAndSWHardeningNeeded",
            "OutOfDate",
            "OutOfDateConfigurationNeeded",
            "Revoked",
        ]
        .map(String::from)
        .to_vec(),
        allowed_advisory_ids: None,
    }
}

/// Accepts any certificate and keeps it, to print what a server presents.
#[derive(Debug, Default)]
struct Capture(Mutex<Option<Vec<u8>>>);

impl PeerPolicy for Capture {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn verify_peer(&self, cert_der: &[u8], now: SystemTime) -> Result<PeerIdentity, PolicyError> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(cert_der.to_vec());
        let (facts, _) = check_self_signed(cert_der, now)?;
        Ok(PeerIdentity {
            public_key: facts.public_key,
            image_hash: None,
            policy: "probe",
            certificate: Default::default(),
        })
    }
}

async fn probe(args: ProbeArgs) -> Result<()> {
    let capture = Arc::new(Capture::default());
    let identity = TeeConfig::none().identity("cocoon-probe")?;
    let connector = Connector::new(&identity.tls, capture.clone(), args.max_pow_difficulty)?;
    let outcome = connector.connect(&args.address).await;
    let cert = capture.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match (&outcome, cert) {
        (_, Some(cert)) => {
            println!("peer {}", args.address);
            if let Err(error) = &outcome {
                // The server may refuse our unattested certificate after showing its own.
                println!("  (handshake ended after the server's certificate: {error})");
            }
            inspect_bytes(&cert, &args.verify)
        }
        (Err(error), None) => bail!("could not reach {}: {error}", args.address),
        (Ok(_), None) => bail!("connected but saw no certificate"),
    }
}
