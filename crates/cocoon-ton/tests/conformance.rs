//! The shared conformance vectors (`contracts/vectors/*.json`) against the native rules.

use std::path::PathBuf;

#[test]
fn every_vector_passes_on_the_native_rules() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts/vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "vectors missing in {}", dir.display());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            cocoon_ton::vectors::run_file(f)
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failing vectors:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_wrong_expectation_fails() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts/vectors");
    for (file, from, to) in [
        (
            "charge_is_monotonic.json",
            "\"balance\": 98000",
            "\"balance\": 98001",
        ),
        (
            "client_close.json",
            "\"error\": \"too_early\"",
            "\"error\": \"wrong_state\"",
        ),
        (
            "workers_and_proxy_close.json",
            "\"paid:bob\": 19000",
            "\"paid:bob\": 19001",
        ),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains(from), "{file} lacks {from}");
        let doc: serde_json::Value = serde_json::from_str(&text.replacen(from, to, 1)).unwrap();
        assert!(
            cocoon_ton::vectors::run(&doc).is_err(),
            "{file} with {to} passed"
        );
    }
}
