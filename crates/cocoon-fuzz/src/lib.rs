//! Fuzz targets: each is a `fn(&[u8])` that hands the bytes to the real public decoders of one
//! kind of peer or chain input and, where a decode succeeds, checks that re-encoding is stable.
//! A target panics only on a bug: a decoder that panics, or a value that does not survive its
//! own encoding. The AFL harness in `fuzz/` and the replay tests both run these functions.

mod attest;
mod chain;
mod json;
mod proto;
pub mod seeds;

/// One fuzz target.
pub struct Target {
    /// Its name: the corpus directory `fuzz/corpus/<name>` and the harness's `COCOON_FUZZ_TARGET`.
    pub name: &'static str,
    /// What it reaches.
    pub about: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "tl_client_proxy",
        about: "what a proxy reads from a client and a client from a proxy (queries, packets, answers)",
        run: proto::client_proxy,
    },
    Target {
        name: "tl_proxy_worker",
        about: "what a worker reads from a proxy and a proxy from a worker",
        run: proto::proxy_worker,
    },
    Target {
        name: "tl_common",
        about: "tcp packets, http.request/response, params, SignedPayment, ConnectionAuth, tokensUsed",
        run: proto::common,
    },
    Target {
        name: "frame",
        about: "the packet framing decoder, fed in pieces",
        run: proto::frame,
    },
    Target {
        name: "session",
        about: "the sans-io session (client or server) fed raw wire bytes",
        run: proto::session,
    },
    Target {
        name: "pow",
        about: "PoW challenge and response",
        run: proto::pow,
    },
    Target {
        name: "certificate",
        about: "RA-TLS certificates and the extensions they carry",
        run: attest::certificate,
    },
    Target {
        name: "tdx_quote",
        about: "TDX quotes (v4/v5), TDX measurement blocks, fake quotes",
        run: attest::tdx_quote,
    },
    Target {
        name: "snp",
        about: "SEV-SNP evidence, attestation reports, certificate tables",
        run: attest::snp,
    },
    Target {
        name: "gpu",
        about: "GPU evidence and NVIDIA attestation reports",
        run: attest::gpu,
    },
    Target {
        name: "claims",
        about: "RA-TLS user claims",
        run: attest::claims,
    },
    Target {
        name: "receipt",
        about: "signed receipts and charges (binary and base64)",
        run: attest::receipt,
    },
    Target {
        name: "sealed",
        about: "sealed requests (worker side), their plaintext, and sealed answer streams (client side)",
        run: attest::sealed,
    },
    Target {
        name: "ledger_record",
        about: "ledger records",
        run: chain::ledger_record,
    },
    Target {
        name: "boc",
        about: "bags of cells and every COCOON contract layout and message read from them",
        run: chain::boc,
    },
    Target {
        name: "sse_usage",
        about: "the worker's SSE usage tracker and JSON usage bodies",
        run: json::sse_usage,
    },
    Target {
        name: "json_request",
        about: "OpenAI request bodies the worker validates, the client reads from apps (chat, completions, Responses), and the prompt estimate",
        run: json::json_request,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}

/// Splits `data` at positions its first byte chooses, for decoders fed in pieces (frames, SSE,
/// sealed answers): the same bytes must decode the same way whatever the split.
pub(crate) fn pieces(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let step = usize::from(step).max(1);
    (rest.chunks(step).collect(), rest)
}

/// A short content hash for corpus file names.
pub fn file_name_hash(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(bytes)[..8])
}
