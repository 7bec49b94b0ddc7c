//! The kill -9 test: a child process charges as fast as it can and prints every request id
//! whose commit resolved; the parent SIGKILLs it at a random instant, reopens the ledger, and
//! checks that every acknowledged charge is there exactly once and the books add up.
//!
//! The child is this test binary itself, re-executed with [`CHILD_ENV`] set to the ledger path.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cocoon_ledger::{Ledger, LedgerConfig, LedgerError, Record};
use rand::Rng;

const CHILD_ENV: &str = "COCOON_LEDGER_CRASH_CHILD";
/// The signal `Child::kill` sends on Unix.
const SIGKILL: i32 = 9;
const ITERATIONS: usize = 24;
const CLIENTS: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];
const WORKERS: [&str; 3] = ["w0", "w1", "w2"];
const PRICE: u128 = 20;
const FEE: u128 = 19;

fn config() -> LedgerConfig {
    LedgerConfig::new([5; 32], PRICE, FEE)
}

#[test]
#[ignore = "the child process of crash_at_random_points"]
fn crash_child() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(Path::new(&path));
    }
}

/// Charges from 64 tasks forever, printing `ACK <hex id>` once each commit resolves; also
/// syncs and records signed charges and payouts so every record kind is in flight.
fn child(path: &Path) {
    // A panic anywhere in the child (a charging task, the signer, the ledger's writer) must not
    // pass for our kill: it tells the parent on the pipe the parent reads, and aborts at once
    // (the default hook's backtrace takes longer than the parent waits before killing).
    std::panic::set_hook(Box::new(|info| {
        say(&format!("PANIC {}", info.to_string().replace('\n', " ")));
        eprintln!("crash child: {info}");
        std::process::abort();
    }));
    let ledger = Arc::new(Ledger::open(path, config()).expect("child open"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for client in CLIENTS {
            let tokens_used = ledger
                .snapshot()
                .clients
                .get(client)
                .map_or(0, |c| c.signed_tokens);
            ledger
                .sync_client(client, u128::MAX / 4, u128::MAX / 4, tokens_used)
                .await
                .expect("sync");
        }
        say("READY");
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..64usize {
            let ledger = ledger.clone();
            tasks.spawn(async move {
                let mut n = task;
                loop {
                    n += 1;
                    let id: [u8; 32] = rand::random();
                    let reservation = ledger
                        .reserve(CLIENTS[n % CLIENTS.len()], 50)
                        .expect("reserve");
                    let tokens = (n % 40) as u64 + 1;
                    ledger
                        .charge(reservation, WORKERS[n % WORKERS.len()], tokens, id)
                        .await
                        .expect("charge");
                    say(&format!("ACK {}", hex::encode(id)));
                }
            });
        }
        let signer = ledger.clone();
        tasks.spawn(async move {
            loop {
                for (client, tokens) in signer.clients_over_threshold(500) {
                    ignore_races(signer.record_signed_charge(&client, tokens).await);
                }
                for (worker, tokens) in signer.workers_over_threshold(500) {
                    ignore_races(signer.record_signed_payout(&worker, tokens).await);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        // The tasks never end on their own: the first to finish has panicked, and the child
        // must die of it (the parent then sees an exit, not its SIGKILL) rather than charge on
        // without it.
        if let Some(ended) = tasks.join_next().await {
            ended.expect("a charging task panicked");
        }
        panic!("a charging task stopped");
    });
}

fn ignore_races(result: Result<cocoon_ledger::Receipt, LedgerError>) {
    match result {
        Ok(_) | Err(LedgerError::NotIncreasing { .. }) => {}
        Err(error) => panic!("signing: {error}"),
    }
}

/// One line to the parent. If the parent is gone, so is the point of running.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

#[test]
fn crash_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acknowledged: HashSet<[u8; 32]> = HashSet::new();
    let mut killed_before_ready = 0;
    for iteration in 0..ITERATIONS {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut acks = Vec::new();
            let mut panics = Vec::new();
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // A line cut by the kill has no newline and proves nothing.
                let Some(text) = line.strip_suffix(b"\n") else {
                    break;
                };
                // libtest prints "test crash_child ... " without a newline just before.
                if text.ends_with(b"READY") {
                    let _ = ready_tx.send(());
                } else if let Some(id) = text.strip_prefix(b"ACK ") {
                    let id: [u8; 32] = hex::decode(id)
                        .ok()
                        .and_then(|id| id.try_into().ok())
                        .expect("well-formed ACK");
                    acks.push(id);
                } else if let Some(panic) = text.strip_prefix(b"PANIC ") {
                    panics.push(String::from_utf8_lossy(panic).into_owned());
                }
            }
            (acks, panics)
        });
        // Every fourth run dies at a random point of its start (open, verify, sync); the rest
        // at a random point while charging.
        if iteration % 4 == 3 {
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..40)));
            killed_before_ready += 1;
        } else {
            ready_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("child ready");
            std::thread::sleep(Duration::from_millis(rng.gen_range(5..60)));
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        let (acks, panics) = reader.join().expect("reader");
        assert_eq!(panics, Vec::<String>::new(), "the child panicked");
        // Only our SIGKILL may end it: an exit or an abort (a panic, an error) is a failure of
        // its own.
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "the child died before the kill: {status}"
        );
        acknowledged.extend(acks);
        verify(&path, &acknowledged);
    }
    assert!(killed_before_ready > 0);
    assert!(
        acknowledged.len() > 200,
        "too few acknowledged charges to mean anything: {}",
        acknowledged.len()
    );
}

/// Reopens (which verifies the chain and signatures) and checks the books against the records.
fn verify(path: &Path, acknowledged: &HashSet<[u8; 32]>) {
    let started = Instant::now();
    let ledger = Ledger::open(path, config()).expect("the ledger verifies after a kill");
    let head = ledger.head();
    let records = ledger.records(1, usize::MAX).expect("records");
    assert_eq!(records.len() as u64, head.seqno);
    let mut charged: HashMap<[u8; 32], u32> = HashMap::new();
    let mut client_nano: HashMap<String, u128> = HashMap::new();
    let mut worker_nano: HashMap<String, u128> = HashMap::new();
    for (index, stored) in records.iter().enumerate() {
        assert_eq!(stored.seqno, index as u64 + 1, "seqnos are consecutive");
        if let Record::Charge(charge) = &stored.record {
            *charged.entry(charge.request_id).or_default() += 1;
            *client_nano.entry(charge.client.clone()).or_default() +=
                u128::from(charge.tokens) * charge.price_per_token;
            *worker_nano.entry(charge.worker.clone()).or_default() +=
                u128::from(charge.tokens) * charge.worker_fee_per_token;
        }
    }
    assert!(
        charged.values().all(|&count| count == 1),
        "a request was charged twice"
    );
    let missing = acknowledged
        .iter()
        .filter(|id| !charged.contains_key(*id))
        .count();
    assert_eq!(missing, 0, "acknowledged charges lost");

    let snapshot = ledger.snapshot();
    let charged_total: u128 = snapshot.clients.values().map(|c| c.charged_nano).sum();
    let earned_total: u128 = snapshot.workers.values().map(|w| w.earned_nano).sum();
    assert_eq!(charged_total, snapshot.charged_nano);
    assert_eq!(earned_total, snapshot.earned_nano);
    assert_eq!(charged_total, earned_total + snapshot.commission_nano);
    assert_eq!(
        snapshot
            .clients
            .values()
            .map(|c| c.charged_tokens)
            .sum::<u64>(),
        snapshot
            .workers
            .values()
            .map(|w| w.earned_tokens)
            .sum::<u64>()
    );
    for (client, account) in &snapshot.clients {
        assert_eq!(account.reserved_tokens, 0, "reservation survived a restart");
        assert!(account.signed_tokens <= account.charged_tokens);
        assert_eq!(
            account.charged_nano,
            client_nano.get(client).copied().unwrap_or(0)
        );
    }
    for (worker, account) in &snapshot.workers {
        assert!(account.paid_tokens <= account.earned_tokens);
        assert_eq!(
            account.earned_nano,
            worker_nano.get(worker).copied().unwrap_or(0)
        );
    }
    ledger.close().expect("close");
    eprintln!(
        "verified {} records ({} charges) in {:?}",
        head.seqno,
        charged.len(),
        started.elapsed()
    );
}
