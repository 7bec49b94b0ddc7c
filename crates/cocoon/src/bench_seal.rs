//! `cocoon bench seal`: what sealing a request to its worker and its answer back costs
//! (`cocoon_attest::sealed`), next to the same bytes unsealed, in one run.

use std::hint::black_box;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use cocoon_attest::sealed::{seal_request, Padding, RequestContext, WorkerKey};

#[derive(Args, Debug)]
pub struct SealBenchArgs {
    /// Requests sealed and opened for the per-request figures.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// MiB of answer sealed and opened per stream configuration.
    #[arg(long, default_value_t = 8)]
    mib: usize,
}

fn per_second(count: f64, started: Instant) -> f64 {
    count / started.elapsed().as_secs_f64()
}

pub async fn run(args: SealBenchArgs) -> Result<()> {
    let worker = WorkerKey::generate();
    let public = worker.public_key();
    let context = RequestContext {
        model: "SmolLM2-135M-Instruct",
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
