//! Running the `cocoon` binary from the CLI tests.

use std::process::{Command, Output};

/// Runs `cocoon ARGS` with logging quiet.
pub fn cocoon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cocoon"))
        .args(args)
        .env("COCOON_LOG", "error")
        .output()
        .expect("run cocoon")
}

/// Its stdout, after asserting it succeeded (printing both streams if not).
pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "cocoon failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
