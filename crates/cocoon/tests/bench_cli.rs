//! `cocoon bench seal` runs with tiny counts and prints every row, each next to its unsealed or
//! unattested peer. Figures are not checked: benchmarks print them, tests never time anything.

mod support;

use support::{cocoon, stdout};

#[test]
fn bench_seal_prints_every_row_with_tiny_counts() {
    let text = stdout(&cocoon(&[
        "bench",
        "seal",
        "--requests",
        "10",
        "--mib",
        "1",
        "--checks",
        "3",
        "--handshakes",
        "3",
        "--row-seconds",
        "1",
    ]));
    for row in [
        "unsealed (copy the body)",
        "client: seal",
        "worker: open",
        "64 B (a token), padded to 256 B",
        "16 KiB, padded",
        "unsealed (no receipt)",
        "worker: sign + encode, fake TDX certificate (devnet)",
        "client: decode + check, fake TDX certificate (devnet)",
        "worker: sign + encode, TDX certificate (sample quote)",
        "client: decode + check, TDX certificate (sample quote)",
        "unattested (danger_any: self-signed check only)",
        "fake TDX, cold (a new policy each check)",
        "fake TDX, again (the same policy; it keeps no cache)",
        "after any policy: the claim reads (model hash, sealing key)",
        "TDX + DCAP, first check of a new policy (loads collateral)",
        "TDX + DCAP, cold (cache off: a quote not seen before)",
        "TDX + DCAP, cached (the same policy, the same quote again)",
        "unattested (danger_any both ways)",
        "fake TDX both ways, cold (new endpoints each)",
        "fake TDX both ways, again (the same endpoints)",
        "client checks TDX + DCAP, cold (cache off)",
        "client checks TDX + DCAP, cached",
    ] {
        assert!(text.contains(row), "no row `{row}` in:\n{text}");
    }
}
