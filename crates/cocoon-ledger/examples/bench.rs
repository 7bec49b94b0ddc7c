//! Runs the ledger benchmark: `cargo run --release -p cocoon-ledger --example bench --
//! [--seconds 2] [--threads 1,2,4] [--in-flight 256] [--dir PATH]`.

use std::process::ExitCode;
use std::time::Duration;

use cocoon_ledger::bench::{run, BenchOptions};

fn main() -> ExitCode {
    let mut options = BenchOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        let parsed = match flag.as_str() {
            "--seconds" => value
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 3600.0)
                .map(|s| options.duration = Duration::from_secs_f64(s)),
            "--threads" => value
                .split(',')
                .map(|t| t.trim().parse::<usize>().ok())
                .collect::<Option<Vec<_>>>()
                .map(|t| options.threads = t),
            "--in-flight" => value.parse().ok().map(|n| options.in_flight_per_thread = n),
            "--max-batch" => value.parse().ok().map(|n| options.max_batch = n),
            "--dir" => {
                options.dir = Some(value.clone().into());
                Some(())
            }
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("bad argument: {flag} {value}");
            return ExitCode::FAILURE;
        }
    }
    match run(&options) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            ExitCode::FAILURE
        }
    }
}
