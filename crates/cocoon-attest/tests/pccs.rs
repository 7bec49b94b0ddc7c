//! Collateral from a PCCS, against a loopback server that answers like a PCCS with the
//! recorded pieces of the dcap-qvl sample collateral (the real services are unreachable here).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cocoon_attest::cert::generate_identity;
use cocoon_attest::dcap::DcapError;
use cocoon_attest::dcap::{load_collateral_json, CollateralSource, DcapVerifier, TcbPolicy};
use cocoon_attest::pccs::{CollateralFetcher, PccsClient};
use cocoon_attest::policy::{AllowLists, AttestError, AttestationPolicy};
use cocoon_attest::provider::danger::ReplayQuote;
use dcap_qvl::QuoteCollateralV3;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn sample_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_751_328_000)
}

fn sample() -> (Vec<u8>, QuoteCollateralV3) {
    let quote = std::fs::read(fixtures().join("tdx_quote")).unwrap();
    let collateral = load_collateral_json(&fixtures().join("tdx_quote_collateral.json")).unwrap();
    (quote, collateral)
}

/// Serves the PCS v4 endpoints from a recorded collateral; records the request targets.
async fn recorded_pccs(collateral: QuoteCollateralV3) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let Ok(n) = socket.read(&mut buffer).await else {
                    break;
                };
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..n]);
            }
            let line = String::from_utf8_lossy(&request)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let target = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            log.lock().unwrap().push(target.clone());
            let encode = |chain: &str| urlencoding::encode(chain).into_owned();
            let (header, body): (Option<(&str, String)>, Vec<u8>) =
                if target.starts_with("/sgx/certification/v4/pckcrl") {
                    (
                        Some((
                            "SGX-PCK-CRL-Issuer-Chain",
                            encode(&collateral.pck_crl_issuer_chain),
                        )),
                        collateral.pck_crl.clone(),
                    )
                } else if target.starts_with("/tdx/certification/v4/tcb") {
                    let body = format!(
                        r#"{{"tcbInfo":{},"signature":"{}"}}"#,
                        collateral.tcb_info,
                        hex::encode(&collateral.tcb_info_signature)
                    );
                    (
                        Some((
                            "TCB-Info-Issuer-Chain",
                            encode(&collateral.tcb_info_issuer_chain),
                        )),
                        body.into_bytes(),
                    )
                } else if target.starts_with("/tdx/certification/v4/qe/identity") {
                    let body = format!(
                        r#"{{"enclaveIdentity":{},"signature":"{}"}}"#,
                        collateral.qe_identity,
                        hex::encode(&collateral.qe_identity_signature)
                    );
                    (
                        Some((
                            "SGX-Enclave-Identity-Issuer-Chain",
                            encode(&collateral.qe_identity_issuer_chain),
                        )),
                        body.into_bytes(),
                    )
                } else if target.starts_with("/sgx/certification/v4/rootcacrl") {
                    (None, hex::encode(&collateral.root_ca_crl).into_bytes())
                } else {
                    let _ = socket
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
                    continue;
                };
            let mut head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            if let Some((name, value)) = header {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&body).await;
        }
    });
    (url, seen)
}

#[tokio::test]
async fn fetched_collateral_is_the_recorded_one_and_verifies() {
    let (quote, recorded) = sample();
    let (url, seen) = recorded_pccs(recorded.clone()).await;
    let (fmspc, fetched) = PccsClient::new(&url, None)
        .unwrap()
        .fetch(&quote)
        .await
        .unwrap();
    assert_eq!(fmspc.len(), 12);
    let targets = seen.lock().unwrap().clone();
    assert!(
        targets
            .iter()
            .any(|t| t.contains(&format!("fmspc={fmspc}"))),
        "{targets:?}"
    );
    assert!(
        targets.iter().any(|t| t.contains("pckcrl?ca=")),
        "{targets:?}"
    );
    // Byte-exact: signatures cover these exact bytes.
    assert_eq!(fetched.tcb_info, recorded.tcb_info);
    assert_eq!(fetched.qe_identity, recorded.qe_identity);
    assert_eq!(fetched.pck_crl, recorded.pck_crl);
    assert_eq!(fetched.root_ca_crl, recorded.root_ca_crl);
    assert_eq!(
        fetched.tcb_info_issuer_chain,
        recorded.tcb_info_issuer_chain
    );
    let verified = DcapVerifier::new(CollateralSource::Fixed(fetched), TcbPolicy::default())
        .verify(&quote, sample_now())
        .unwrap();
    assert_eq!(verified.tcb_status, "UpToDate");
}

#[tokio::test]
async fn a_policy_without_collateral_asks_the_fetcher_and_verifies_after_it_delivered() {
    let (quote, recorded) = sample();
    let (url, _) = recorded_pccs(recorded).await;
    let dir = tempfile::tempdir().unwrap();
    let (fetcher, requests) = CollateralFetcher::new(
        PccsClient::new(&url, None).unwrap(),
        dir.path().to_path_buf(),
    );
    let verifier = DcapVerifier::new(
        CollateralSource::Directory(dir.path().to_path_buf()),
        TcbPolicy::default(),
    );
    let policy = AttestationPolicy::tdx_with_fetcher(verifier, AllowLists::default(), requests);
    let cert = generate_identity(&ReplayQuote(quote), "peer", sample_now())
        .unwrap()
        .tls
        .cert_der;

    // First handshake: nothing to verify against; the refusal is immediate, the fetch queued.
    assert!(matches!(
        policy.check(&cert, sample_now()),
        Err(AttestError::Dcap(DcapError::NoCollateral(_)))
    ));
    let (trigger, shutdown) = cocoon_net::ShutdownTrigger::new();
    let running = tokio::spawn(fetcher.run(shutdown));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Past DCAP now: the sample quote is genuine, only not bound to this certificate.
        match policy.check(&cert, sample_now()) {
            Err(AttestError::ReportDataMismatch) => break,
            Err(AttestError::Dcap(DcapError::NoCollateral(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "collateral never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one collateral file, no temporaries: {files:?}"
    );
    trigger.drain();
    running.await.unwrap();
}

#[tokio::test]
async fn pccs_failures_are_errors_not_panics() {
    let (quote, _) = sample();
    // Nobody listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = PccsClient::new(&format!("http://{dead}"), None).unwrap();
    assert!(matches!(
        client.fetch(&quote).await,
        Err(AttestError::Collateral(_))
    ));
    assert!(matches!(
        client.fetch(b"not a quote").await,
        Err(AttestError::Collateral(_))
    ));
    assert!(matches!(
        PccsClient::new("ftp://x", None),
        Err(AttestError::Config(_))
    ));
    assert!(matches!(
        PccsClient::new("https://x", Some(b"no pem here")),
        Err(AttestError::Config(_))
    ));
}
