//! The ledger benchmark (`cocoon bench ledger`): charged requests per second, durable and not,
//! side by side, with the distribution of commit batch sizes and how long a charge waits for
//! its commit.
//!
//! Each configuration opens a fresh ledger, syncs a set of clients with ample balance, and
//! runs `threads × in_flight_per_thread` tokio tasks that loop `reserve` + `charge` (awaiting
//! the commit) until the time is up — the proxy's pattern, one request per task.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Durability, Ledger, LedgerConfig, LedgerError, OpenError, WriterStats};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Where the ledger files go (one per configuration, removed afterwards); the system's
    /// temporary directory when `None`. Put it on the disk the proxy will use.
    pub dir: Option<PathBuf>,
    /// How long each configuration runs.
    pub duration: Duration,
    /// Tokio worker thread counts to try.
    pub threads: Vec<usize>,
    /// Concurrent requests per thread.
    pub in_flight_per_thread: usize,
    /// The writer's batch limit.
    pub max_batch: usize,
    /// Distinct clients charged (round robin).
    pub clients: usize,
    /// Distinct workers credited (round robin).
    pub workers: usize,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            dir: None,
            duration: Duration::from_secs(2),
            threads: vec![1, 2, 4],
            in_flight_per_thread: 256,
            max_batch: crate::DEFAULT_MAX_BATCH,
            clients: 1000,
            workers: 100,
        }
    }
}

/// One configuration's result.
#[derive(Clone, Debug)]
pub struct BenchRow {
    /// Durable or not.
    pub durability: Durability,
    /// Tokio worker threads.
    pub threads: usize,
    /// Concurrent requests in all.
    pub in_flight: usize,
    /// Charges committed.
    pub charges: u64,
    /// Wall time, from the first submission to the last commit.
    pub elapsed: Duration,
    /// The writer's batches during the run.
    pub batches: WriterStats,
    /// Records in the file at the end.
    pub records: u64,
    /// How long reopening the file took (verifying every hash and signature).
    pub reopen: Duration,
    /// How long a charge waited for its commit (from `charge` to its `Pending` resolving):
    /// median and 99th percentile.
    pub wait_p50: Duration,
    /// See `wait_p50`.
    pub wait_p99: Duration,
}

impl BenchRow {
    /// Committed charges per second.
    pub fn charges_per_second(&self) -> f64 {
        self.charges as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Mean records per commit.
    pub fn mean_batch(&self) -> f64 {
        self.batches.records as f64 / self.batches.batches.max(1) as f64
    }
}

/// All configurations' results. `Display` prints them as tables.
#[derive(Clone, Debug, Default)]
pub struct BenchReport {
    /// One row per (durability, threads).
    pub rows: Vec<BenchRow>,
}

/// Why the benchmark could not run.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The ledger did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// An operation failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Files or threads.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Nonsensical options.
    #[error("invalid benchmark options: {0}")]
    Options(&'static str),
}

/// Runs every configuration, durable then not durable for each thread count.
pub fn run(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    if options.threads.contains(&0)
        || options.in_flight_per_thread == 0
        || options.clients == 0
        || options.workers == 0
    {
        return Err(BenchError::Options(
            "threads, in-flight, clients and workers must be at least 1",
        ));
    }
    let base = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut report = BenchReport::default();
    for (index, &threads) in options.threads.iter().enumerate() {
        for durability in [Durability::Durable, Durability::NotDurable] {
            let dir = base.join(format!(
                "cocoon-ledger-bench-{}-{index}-{durability:?}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir)?;
            let result = run_one(options, &dir, threads, durability);
            // Best effort: a leftover temporary directory is no reason to fail the run.
            let _ = std::fs::remove_dir_all(&dir);
            report.rows.push(result?);
        }
    }
    Ok(report)
}

fn run_one(
    options: &BenchOptions,
    dir: &std::path::Path,
    threads: usize,
    durability: Durability,
) -> Result<BenchRow, BenchError> {
    let config = LedgerConfig {
        durability,
        max_batch: options.max_batch,
        ..LedgerConfig::new([0x42; 32], 20, 19)
    };
    let ledger = Arc::new(Ledger::open(dir.join("bench.ledger"), config)?);
    let clients: Arc<[String]> = (0..options.clients)
        .map(|i| format!("client-{i}"))
        .collect();
    let workers: Arc<[String]> = (0..options.workers)
        .map(|i| format!("worker-{i}"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .build()?;
    runtime.block_on(async {
        for client in clients.iter() {
            ledger
                .sync_client(client, u128::MAX / 4, u128::MAX / 4, 0)
                .await?;
        }
        Ok::<_, LedgerError>(())
    })?;

    let before = ledger.writer_stats();
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = threads * options.in_flight_per_thread;
    let started = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|task| {
            let ledger = Arc::clone(&ledger);
            let stop = Arc::clone(&stop);
            let clients = Arc::clone(&clients);
            let workers = Arc::clone(&workers);
            runtime.spawn(async move {
                let mut done = 0u64;
                let mut waits = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let step = task as u64 * 7919 + done;
                    let client = &clients[(step % clients.len() as u64) as usize];
                    let worker = &workers[(step % workers.len() as u64) as usize];
                    let mut request_id = [0u8; 32];
                    request_id[..8].copy_from_slice(&(task as u64).to_le_bytes());
                    request_id[8..16].copy_from_slice(&done.to_le_bytes());
                    let reservation = ledger.reserve(client, 100)?;
                    let charged = Instant::now();
                    ledger.charge(reservation, worker, 60, request_id).await?;
                    waits.push(charged.elapsed());
                    done += 1;
                }
                Ok::<_, LedgerError>((done, waits))
            })
        })
        .collect();
    std::thread::sleep(options.duration);
    stop.store(true, Ordering::Relaxed);
    let (charges, mut waits) = runtime.block_on(async {
        let mut charges = 0;
        let mut all_waits = Vec::new();
        for task in tasks {
            let (done, waits) = task
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            charges += done;
            all_waits.extend(waits);
        }
        Ok::<_, BenchError>((charges, all_waits))
    })?;
    waits.sort_unstable();
    let percentile = |p: usize| {
        waits
            .get((waits.len() * p / 100).min(waits.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let (wait_p50, wait_p99) = (percentile(50), percentile(99));
    let elapsed = started.elapsed();
    let after = ledger.writer_stats();
    drop(runtime);
    if let Ok(ledger) = Arc::try_unwrap(ledger) {
        ledger.close()?;
    }
    let reopening = Instant::now();
    let reopened = Ledger::open(
        dir.join("bench.ledger"),
        LedgerConfig::new([0x42; 32], 20, 19),
    )?;
    let reopen = reopening.elapsed();
    let records = reopened.head().seqno;
    reopened.close()?;
    Ok(BenchRow {
        wait_p50,
        wait_p99,
        records,
        reopen,
        durability,
        threads,
        in_flight,
        charges,
        elapsed,
        batches: WriterStats {
            batches: after.batches - before.batches,
            records: after.records - before.records,
            histogram: after
                .histogram
                .iter()
                .zip(&before.histogram)
                .map(|(a, b)| a - b)
                .collect(),
            delayed: after.delayed - before.delayed,
            by_caller: after.by_caller - before.by_caller,
            caller_pauses: after.caller_pauses - before.caller_pauses,
            flush_micros: after.flush_micros - before.flush_micros,
            slow_flushes: after.slow_flushes - before.slow_flushes,
            // The longest since the ledger opened: the bench's own run opened it.
            flush_max_micros: after.flush_max_micros,
        },
    })
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>7} {:>9} {:>12} {:>10} {:>9} {:>11} {:>11} {:>11} {:>11} {:>14}",
            "durability",
            "threads",
            "in flight",
            "charges/s",
            "charges",
            "commits",
            "mean batch",
            "mean flush",
            "wait p50",
            "wait p99",
            "reopen+verify"
        )?;
        for row in &self.rows {
            writeln!(
                f,
                "{:<12} {:>7} {:>9} {:>12.0} {:>10} {:>9} {:>11.1} {:>8.3} ms {:>8.2} ms {:>8.2} ms {:>11.0} ms",
                durability_name(row.durability),
                row.threads,
                row.in_flight,
                row.charges_per_second(),
                row.charges,
                row.batches.batches,
                row.mean_batch(),
                row.batches.flush_micros as f64 / row.batches.batches.max(1) as f64 / 1000.0,
                row.wait_p50.as_secs_f64() * 1000.0,
                row.wait_p99.as_secs_f64() * 1000.0,
                row.reopen.as_secs_f64() * 1000.0
            )?;
        }
        writeln!(f)?;
        writeln!(f, "commits by batch size (records per commit):")?;
        write!(f, "{:<12}", "batch size")?;
        for row in &self.rows {
            write!(
                f,
                " {:>14}",
                format!("{}/{}t", short_name(row.durability), row.threads)
            )?;
        }
        writeln!(f)?;
        let buckets = self
            .rows
            .iter()
            .map(|r| r.batches.histogram.len())
            .max()
            .unwrap_or(0);
        for bucket in 0..buckets {
            if self
                .rows
                .iter()
                .all(|r| r.batches.histogram.get(bucket).copied().unwrap_or(0) == 0)
            {
                continue;
            }
            let low = 1u64 << bucket;
            let label = if low == 1 {
                "1".to_string()
            } else {
                format!("{low}-{}", (low << 1) - 1)
            };
            write!(f, "{label:<12}")?;
            for row in &self.rows {
                write!(
                    f,
                    " {:>14}",
                    row.batches.histogram.get(bucket).copied().unwrap_or(0)
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Durable => "durable",
        Durability::NotDurable => "not durable",
    }
}

fn short_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Durable => "dur",
        Durability::NotDurable => "nodur",
    }
}
