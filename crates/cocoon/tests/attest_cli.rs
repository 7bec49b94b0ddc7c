//! `cocoon attest` as a user runs it: generate a certificate, inspect it, inspect a real
//! quote with collateral, and probe a live port.

use std::path::PathBuf;
mod support;

use support::{cocoon, stdout};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cocoon-attest/tests/fixtures")
}

#[test]
fn gen_cert_then_inspect_shows_the_fake_measurements_and_binding() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mrtd = "ab".repeat(48);
    let text = stdout(&cocoon(&[
        "attest",
        "gen-cert",
        "--tee",
        "fake",
        "--name",
        "w1",
        "--out",
        out,
        "--fake-mrtd",
        &mrtd,
    ]));
    assert!(
        text.contains("w1_cert.pem") && text.contains("w1_key.pem"),
        "{text}"
    );
    let hash = std::fs::read_to_string(dir.path().join("w1_image_hash.hex")).unwrap();
    assert_eq!(hash.trim().len(), 64);
    let key_mode = std::fs::metadata(dir.path().join("w1_key.pem")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );

    let text = stdout(&cocoon(&[
        "attest",
        "inspect",
        &format!("{out}/w1_cert.pem"),
    ]));
    assert!(text.contains("FAKE"), "{text}");
    assert!(text.contains(&format!("MRTD             {mrtd}")), "{text}");
    assert!(
        text.contains(&format!("image hash       {}", hash.trim())),
        "{text}"
    );
    assert!(text.contains("bound to key     yes"), "{text}");
    assert!(!text.contains("model hash"), "no model claimed: {text}");
}

#[test]
fn a_worker_s_model_identity_is_bound_and_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let weights = "5a".repeat(32);
    stdout(&cocoon(&[
        "attest",
        "gen-cert",
        "--tee",
        "fake",
        "--name",
        "m1",
        "--out",
        out,
        "--model",
        "Qwen/Qwen3-0.6B",
        "--weights-digest",
        &weights,
    ]));
    let text = stdout(&cocoon(&[
        "attest",
        "inspect",
        &format!("{out}/m1_cert.pem"),
    ]));
    // SHA-256("Qwen/Qwen3-0.6B").
    let model_hash = cocoon_attest::hex(&cocoon_attest::model_hash("Qwen/Qwen3-0.6B"));
    assert!(
        text.contains(&format!("model hash       {model_hash}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("weights digest   {weights}")),
        "{text}"
    );
    assert!(text.contains("bound to key     yes"), "{text}");
}

#[test]
fn inspect_a_real_quote_with_collateral_prints_its_tcb_status() {
    let quote = fixtures().join("tdx_quote");
    let collateral = fixtures();
    let text = stdout(&cocoon(&[
        "attest",
        "inspect",
        quote.to_str().unwrap(),
        "--collateral",
        collateral.to_str().unwrap(),
        "--now",
        "1751328000",
    ]));
    assert!(text.contains("Intel TDX"), "{text}");
    assert!(text.contains("version          4"), "{text}");
    assert!(text.contains("TCB status       UpToDate"), "{text}");
    // The sample's measurements, as `tests/dcap.rs` in cocoon-attest computes them from the
    // quote bytes; the image hash is SHA-256 over them with the report data zeroed.
    for expected in [
        "MRTD             91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7",
        "RTMR0            44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0",
        "RTMR1            0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b3093d54e579e9378",
        "RTMR2            d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c3132",
        "report data      9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20",
        "image hash       b260fa9168ca9f28e7f15f128a45ac31c419705b31a60feac30b322ee06bc752",
        "TEE type         0x81",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    // Without collateral it says what it did not check.
    let text = stdout(&cocoon(&["attest", "inspect", quote.to_str().unwrap()]));
    assert!(text.contains("not checked"), "{text}");
}

#[test]
fn gen_cert_with_tdx_outside_a_td_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let output = cocoon(&[
        "attest",
        "gen-cert",
        "--tee",
        "tdx",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    if std::path::Path::new("/sys/kernel/config/tsm/report").is_dir() {
        return; // A real TD guest: nothing to refuse.
    }
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("not an Intel TDX guest"), "{error}");
}

#[test]
fn inspect_refuses_garbage_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk");
    std::fs::write(&path, b"definitely not a certificate").unwrap();
    let output = cocoon(&["attest", "inspect", path.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_prints_what_a_live_proxy_presents() {
    let devnet = cocoon_testkit::Devnet::builder().start().await.unwrap();
    for port in [devnet.proxy.client_addr, devnet.proxy.worker_addr] {
        let address = port.to_string();
        let output = tokio::task::spawn_blocking(move || cocoon(&["attest", "probe", &address]))
            .await
            .unwrap();
        let text = stdout(&output);
        assert!(
            text.contains("FAKE"),
            "the devnet proxy shows a fake quote: {text}"
        );
        assert!(text.contains("bound to key     yes"), "{text}");
        assert!(
            text.contains(&format!(
                "public key       {}",
                cocoon_attest::hex(&devnet.proxy.public_key)
            )),
            "{text}"
        );
    }
    devnet.stop().await;
}

#[test]
fn an_snp_certificate_inspects_as_its_report_with_its_binding() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let text = stdout(&cocoon(&[
        "attest", "gen-cert", "--tee", "fake-snp", "--name", "s1", "--out", out,
    ]));
    let hash = std::fs::read_to_string(dir.path().join("s1_image_hash.hex")).unwrap();
    assert_eq!(hash.trim().len(), 64, "{text}");
    let text = stdout(&cocoon(&[
        "attest",
        "inspect",
        &format!("{out}/s1_cert.pem"),
    ]));
    assert!(text.contains("SEV-SNP report   version 2 (FAKE"), "{text}");
    assert!(
        text.contains(&format!("image hash       {}", hash.trim())),
        "{text}"
    );
    assert!(text.contains("bound to key     yes"), "{text}");
    assert!(!text.contains("quote            none"), "{text}");
}
