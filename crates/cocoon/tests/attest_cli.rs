//! `cocoon attest` as a user runs it: generate a certificate, inspect it, inspect a real
//! quote with collateral, and probe a live port.

use std::path::PathBuf;
use std::process::{Command, Output};

fn cocoon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cocoon"))
        .args(args)
        .env("COCOON_LOG", "error")
        .output()
        .expect("run cocoon")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "cocoon failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

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
    assert!(text.contains("RTMR3"), "{text}");
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
