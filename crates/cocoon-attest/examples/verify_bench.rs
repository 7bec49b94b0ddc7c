//! Times DCAP verification of the v4 sample quote: cold (full verification, cache off) and
//! warm (answered from the result cache). Run with
//! `cargo run --release -p cocoon-attest --example verify_bench [iterations]`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cocoon_attest::dcap::{CollateralSource, DcapVerifier, TcbPolicy};

/// Inside the sample collateral's validity (2025-06-19 .. 2025-07-19).
const NOW: u64 = 1_751_328_000;

fn median_micros(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let quote = std::fs::read(format!("{fixtures}/tdx_quote")).expect("sample quote");
    let collateral = serde_json::from_slice(
        &std::fs::read(format!("{fixtures}/tdx_quote_collateral.json")).expect("collateral"),
    )
    .expect("collateral JSON");
    let now = UNIX_EPOCH + Duration::from_secs(NOW);

    let cold = DcapVerifier::new(CollateralSource::Fixed(collateral), TcbPolicy::default())
        .with_cache_capacity(0);
    let mut cold_samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        cold.verify(&quote, now).expect("sample verifies");
        cold_samples.push(start.elapsed());
    }

    let dir = format!("{fixtures}/.bench-collateral");
    // The directory source adds a directory scan to each cache miss; measure that too.
    std::fs::create_dir_all(&dir).expect("bench dir");
    std::fs::copy(
        format!("{fixtures}/tdx_quote_collateral.json"),
        format!("{dir}/collateral.json"),
    )
    .expect("copy collateral");
    let from_dir = DcapVerifier::new(
        CollateralSource::Directory(dir.clone().into()),
        TcbPolicy::default(),
    )
    .with_cache_capacity(0);
    let mut dir_samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        from_dir.verify(&quote, now).expect("sample verifies");
        dir_samples.push(start.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);

    let warm = DcapVerifier::new(
        CollateralSource::Fixed(
            serde_json::from_slice(
                &std::fs::read(format!("{fixtures}/tdx_quote_collateral.json"))
                    .expect("collateral"),
            )
            .expect("collateral JSON"),
        ),
        TcbPolicy::default(),
    );
    warm.verify(&quote, now).expect("sample verifies");
    let warm_iterations = iterations * 100;
    let mut warm_samples = Vec::with_capacity(warm_iterations);
    for _ in 0..warm_iterations {
        let start = Instant::now();
        warm.verify(&quote, now).expect("sample verifies");
        warm_samples.push(start.elapsed());
    }
    let (hits, misses) = warm.cache_stats();

    println!("quote: {} bytes, now = {NOW}", quote.len());
    println!(
        "cold (fixed collateral, no cache):  median {:>9.1} µs over {iterations}",
        median_micros(cold_samples)
    );
    println!(
        "cold (collateral directory):        median {:>9.1} µs over {iterations}",
        median_micros(dir_samples)
    );
    println!(
        "warm (cache hit):                   median {:>9.1} µs over {warm_iterations} ({hits} hits, {misses} misses)",
        median_micros(warm_samples)
    );
    let _ = SystemTime::now; // the verifier never reads the clock; neither does this bench
}
