//! `cocoon bench scale`: how one proxy copes with many workers and many concurrent streams.
//!
//! The proxy runs as a child process (the real binary, free mode, fake TEE). This process plays
//! every worker and every client over real TCP + PoW + TLS connections: the bench workers answer
//! each request themselves (a head at once, then parts on a timer), the clients run a closed
//! loop of streaming requests. It prints figures; it asserts nothing.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use cocoon_attest::{PeerPolicyConfig, PolicyKind, TeeConfig, TeeKind};
use cocoon_net::{Connection, ConnectionHandle, Connector, Incoming};
use cocoon_proto::{codes, *};
use tokio::sync::{mpsc, oneshot};

mod peers;
use peers::*;

const MODEL: &str = "scale-model";
const LONG_ABOUT: &str = "\
How does ONE proxy cope with many workers and many concurrent streams?

Starts one proxy as a child process (this binary, `proxy`, free mode, fake TEE, PoW lowered to
--pow-bits), then, from this process, over real TCP + PoW + TLS 1.3 connections:

* workers: W bench workers (one identity, the devnet's fake TEE) register for the model
  \"scale-model\". Each answers every proxy.runQueryEx itself, with no backend and no think time:
  an http.response head (200, text/event-stream, a first SSE chunk) at once, then --parts parts
  --part-interval-ms apart, the last one final with tokensUsed. Workers are added step by step
  (--workers 10,100,1000: connect 10, run every stream level, connect 90 more, ...); each step
  prints handshakes/s and the proxy's RSS with only idle workers connected.
* clients: --clients connections (connectToProxy + short authorization) carry S concurrent
  streaming requests (--streams 100,1000,10000), a closed loop: each of the S slots starts its
  next request when the previous one ends. The slots are started over a ramp (default: one
  stream's length, so starts are spread over the whole cycle), then figures are taken for
  --seconds.

One row per (workers, streams): completed requests per second; time to first byte (client sends
-> head arrives) and to last byte (-> final part), p50 and p99; p99 ADDED TTFB, which is all of
the TTFB here because the bench worker answers the head at once (no think time): it is what
client -> proxy -> worker -> proxy -> client adds, including this process's own I/O on both ends;
the proxy's RSS (VmRSS, MiB) and CPU (utime + stime over the measured window / wall time, % of
one core); errors (error answers, missing parts, lost connections, requests unfinished after
the drain), which must be 0. The last line checks the target: at 1,000 workers and 10,000
streams, proxy RSS < 1 GiB and p99 added TTFB < 50 ms.

Everything is on 127.0.0.1; the proxy is killed at the end, on error and on Ctrl-C.";

/// `cocoon bench scale` options.
#[derive(Args, Debug)]
#[command(long_about = LONG_ABOUT)]
pub struct ScaleArgs {
    /// Worker counts to step through, comma-separated (workers are only ever added).
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    workers: Vec<usize>,
    /// Concurrent streams per row, comma-separated; every level runs at every worker step.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    streams: Vec<usize>,
    /// Client connections the streams are spread over.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Parts a bench worker sends after the head (the last is final, with tokensUsed).
    #[arg(long, default_value_t = 10)]
    parts: u32,
    /// Milliseconds between a request's parts (the head goes at once).
    #[arg(long, default_value_t = 300)]
    part_interval_ms: u64,
    /// Measured seconds per row (after the ramp).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds over which a row's streams are started (default: one stream's length, parts ×
    /// interval).
    #[arg(long)]
    ramp_seconds: Option<f64>,
    /// Proof-of-work bits the proxy demands of every connection.
    #[arg(long, default_value_t = 8)]
    pow_bits: i32,
    /// Handshakes in flight at once while connecting workers and clients.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// The proxy child's log filter (its log goes to a file in a temporary directory, printed
    /// on failure).
    #[arg(long, default_value = "warn")]
    proxy_log: String,
}

impl ScaleArgs {
    fn check(&mut self) -> Result<()> {
        if !(self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= 600.0) {
            bail!("--seconds must be in (0, 600]");
        }
        if !(1..=1000).contains(&self.parts) {
            bail!("--parts must be in 1..=1000");
        }
        if !(1..=10_000).contains(&self.part_interval_ms) {
            bail!("--part-interval-ms must be in 1..=10000");
        }
        if let Some(ramp) = self.ramp_seconds {
            if !(ramp.is_finite() && (0.0..=600.0).contains(&ramp)) {
                bail!("--ramp-seconds must be in [0, 600]");
            }
        }
        if !(0..=28).contains(&self.pow_bits) {
            bail!("--pow-bits must be in 0..=28");
        }
        if !(1..=10_000).contains(&self.clients) {
            bail!("--clients must be in 1..=10000");
        }
        self.workers.sort_unstable();
        self.workers.dedup();
        self.streams.sort_unstable();
        self.streams.dedup();
        if self.workers.is_empty()
            || self.workers[0] == 0
            || self.workers[self.workers.len() - 1] > 100_000
        {
            bail!("--workers: counts in 1..=100000");
        }
        if self.streams.is_empty()
            || self.streams[0] == 0
            || self.streams[self.streams.len() - 1] > 1_000_000
        {
            bail!("--streams: counts in 1..=1000000");
        }
        self.connect_concurrency = self.connect_concurrency.clamp(1, 1024);
        Ok(())
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.part_interval_ms)
    }

    fn stream_length(&self) -> Duration {
        self.interval() * self.parts
    }
}

// ---------------------------------------------------------------- the proxy child

/// The proxy process; killed (and its directory removed) when dropped, so no path leaves it
/// behind. The child also dies with this process (PR_SET_PDEATHSIG).
struct ProxyChild {
    child: Child,
    dir: PathBuf,
    _stdout: Option<BufReader<ChildStdout>>,
    client_addr: String,
    worker_addr: String,
}

impl ProxyChild {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("proxy.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ProxyChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_proxy(args: &ScaleArgs) -> Result<ProxyChild> {
    let dir = crate::bench::tempfile_dir("scale")?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = cocoon_proxy::ProxyConfig::new(
        TeeConfig::of(TeeKind::DangerFake),
        PeerPolicyConfig::of(PolicyKind::DangerFakeTdx),
    );
    config.client_listen = loopback;
    config.worker_listen = loopback;
    config.http_listen = loopback;
    config.models = vec![MODEL.into()];
    config.pow_difficulty = args.pow_bits;
    config.max_request_timeout_secs = 600.0;
    config.grace_period_secs = 1.0;
    // Every bench worker and client comes from loopback: lift the connection caps.
    config.max_connections = 100_000;
    config.max_connections_per_ip = 100_000;
    let config_path = dir.join("proxy.toml");
    std::fs::write(&config_path, toml::to_string(&config)?)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let log = std::fs::File::create(dir.join("proxy.log"))?;
    let mut command = Command::new(std::env::current_exe().context("cannot find this binary")?);
    command
        .arg("--log")
        .arg(&args.proxy_log)
        .arg("proxy")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; the closure touches nothing else.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = command.spawn().context("cannot start the proxy")?;
    let mut proxy = ProxyChild {
        child,
        dir,
        _stdout: None,
        client_addr: String::new(),
        worker_addr: String::new(),
    };
    let stdout = proxy.child.stdout.take().context("no proxy stdout")?;
    let read = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).map(|_| (line, reader))
    });
    let (line, reader) = match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(Ok(Ok(read))) => read,
        _ => bail!("the proxy did not start; its log:\n{}", proxy.log_tail()),
    };
    // "proxy up: clients A | workers B | stats http://C/stats"
    let field = |name: &str| {
        line.split('|').find_map(|part| {
            part.trim()
                .rsplit_once(&format!("{name} "))
                .map(|(_, a)| a.trim().to_string())
        })
    };
    match (field("clients"), field("workers")) {
        (Some(clients), Some(workers)) => {
            proxy.client_addr = clients;
            proxy.worker_addr = workers;
        }
        _ => bail!(
            "unexpected proxy output {line:?}; its log:\n{}",
            proxy.log_tail()
        ),
    }
    proxy._stdout = Some(reader);
    Ok(proxy)
}

/// VmRSS of a process in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// utime + stime of a process in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based); `rest` starts at field 3.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// Busy CPU seconds of the whole machine (every core), from /proc/stat.
fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    busy as f64 / hz
}

// ---------------------------------------------------------------- driver

/// Connects `count` peers with at most `concurrency` handshakes at once.
async fn connect_many<F, Fut>(
    count: usize,
    first_index: usize,
    concurrency: usize,
    connect: F,
) -> Result<Vec<Connection>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Connection>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut connections = Vec::with_capacity(count);
    let mut next = 0;
    while next < count || !tasks.is_empty() {
        while next < count && tasks.len() < concurrency {
            tasks.spawn(connect(first_index + next));
            next += 1;
        }
        if let Some(result) = tasks.join_next().await {
            connections.push(result.context("a connecting task panicked")??);
        }
    }
    Ok(connections)
}

struct Row {
    workers: usize,
    streams: usize,
    per_second: f64,
    ttfb: (f64, f64),
    ttlb: (f64, f64),
    rss: u64,
    cpu: f64,
    bench_cpu: f64,
    other_cpu: f64,
    errors: u64,
}

/// p50 and p99 in milliseconds.
fn quantiles(samples: &mut [u32]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    (at(0.5), at(0.99))
}

/// 12345 → "12,345".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

const HEADER: &str = "  workers |  streams |    req/s | TTFB p50 ms | TTFB p99 ms | TTLB p50 ms | TTLB p99 ms | p99 added TTFB ms | proxy RSS MiB | proxy CPU % | errors | bench CPU % | others CPU %";

fn format_row(row: &Row) -> String {
    format!(
        "{:>9} | {:>8} | {:>8} | {:>11.2} | {:>11.2} | {:>11.1} | {:>11.1} | {:>17.2} | {:>13.1} | {:>11.0} | {:>6} | {:>11.0} | {:>12.0}",
        thousands(row.workers as u64),
        thousands(row.streams as u64),
        thousands(row.per_second.round() as u64),
        row.ttfb.0,
        row.ttfb.1,
        row.ttlb.0,
        row.ttlb.1,
        row.ttfb.1,
        mib(row.rss),
        row.cpu,
        thousands(row.errors),
        row.bench_cpu,
        row.other_cpu
    )
}

pub async fn run(mut args: ScaleArgs) -> Result<()> {
    args.check()?;
    let proxy = start_proxy(&args).await?;
    let result = tokio::select! {
        result = bench(&args, &proxy) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if result.is_err() {
        eprintln!("proxy log (last lines):\n{}", proxy.log_tail());
    }
    drop(proxy);
    result
}

async fn bench(args: &ScaleArgs, proxy: &ProxyChild) -> Result<()> {
    let pid = proxy.pid();
    let max_workers = *args.workers.last().unwrap_or(&0);
    let max_streams = *args.streams.last().unwrap_or(&0);
    let needed = (max_workers + args.clients + 64) as u64;
    let limits = crate::raise_fd_limit();
    if let Some((soft, _)) = limits {
        if soft < needed {
            println!(
                "warning: the open-file limit is {} but {} workers + {} clients need about {} (raise `ulimit -n`)",
                thousands(soft),
                thousands(max_workers as u64),
                thousands(args.clients as u64),
                thousands(needed)
            );
        }
    }
    let ramp = args
        .ramp_seconds
        .map_or(args.stream_length(), Duration::from_secs_f64);
    println!(
        "cocoon bench scale: one proxy (pid {pid}, free mode, fake TEE, PoW {} bits) on 127.0.0.1 ({} cores, shared by the proxy, this bench and anything else running); {} client connections; each answer = head at once + {} parts {} ms apart ({} ms a stream); streams started over a {:.1} s ramp, then {} s measured per row; open-file limit {}",
        args.pow_bits,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        thousands(args.clients as u64),
        args.parts,
        args.part_interval_ms,
        args.stream_length().as_millis(),
        ramp.as_secs_f64(),
        args.seconds,
        limits.map_or("unknown".into(), |(soft, _)| thousands(soft)),
    );
    println!("TTFB needs no worker think time: the bench worker answers the head at once, so all of the TTFB is added by client -> proxy -> worker -> proxy -> client (this process's I/O included); p99 added TTFB = p99 TTFB.");

    let identity = TeeConfig::of(TeeKind::DangerFake).identity("bench-worker")?;
    let policy = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx)
        .build()?
        .policy;
    let worker_connector = Arc::new(Connector::new(&identity.tls, policy.clone(), 28)?);
    let client_identity = TeeConfig::none().identity("bench-client")?;
    let client_connector = Arc::new(Connector::new(&client_identity.tls, policy, 28)?);

    let shared = Arc::new(Shared {
        templates: templates(args.parts)?,
        parts: args.parts,
        interval: args.interval(),
        schedule: Mutex::new(BinaryHeap::new()),
        seq: AtomicU64::new(0),
        running: AtomicBool::new(false),
        epoch: Instant::now(),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        next_id: AtomicU64::new(0),
        worker_links_lost: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let schedule = tokio::spawn(run_schedule(shared.clone()));

    // Clients first: they wait, idle, for the first worker step.
    let started = Instant::now();
    let address: Arc<str> = proxy.client_addr.as_str().into();
    let clients = connect_many(args.clients, 0, args.connect_concurrency, |i| {
        connect_client(client_connector.clone(), address.clone(), i)
    })
    .await
    .context("connecting clients")?;
    println!(
        "{} clients connected in {:.2} s",
        thousands(clients.len() as u64),
        started.elapsed().as_secs_f64()
    );
    let mut commands = Vec::new();
    for connection in clients {
        let (sender, receiver) = mpsc::unbounded_channel();
        commands.push(sender);
        tokio::spawn(serve_client(connection, shared.clone(), receiver));
    }

    let max_active = (max_streams.max(1000) * 2).min(i32::MAX as usize / 2) as i32;
    let worker_address: Arc<str> = proxy.worker_addr.as_str().into();
    let mut rows = Vec::new();
    let mut steps = Vec::new();
    let mut connected = 0;
    for &target in &args.workers {
        let add = target - connected;
        let started = Instant::now();
        let links = connect_many(add, connected, args.connect_concurrency, |i| {
            connect_worker(
                worker_connector.clone(),
                worker_address.clone(),
                i,
                max_active,
            )
        })
        .await
        .with_context(|| format!("connecting workers {connected}..{target}"))?;
        let elapsed = started.elapsed().as_secs_f64();
        for link in links {
            tokio::spawn(serve_worker(link, shared.clone()));
        }
        connected = target;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let step = format!(
            "step: {} workers connected (+{} in {:.2} s, {} handshakes/s, {} at a time); proxy RSS with only idle workers: {:.1} MiB",
            thousands(target as u64),
            thousands(add as u64),
            elapsed,
            thousands((add as f64 / elapsed.max(1e-9)).round() as u64),
            args.connect_concurrency,
            mib(rss_bytes(pid))
        );
        println!("{step}");
        println!("{HEADER}");
        steps.push(step);
        for &streams in &args.streams {
            let row = run_row(args, &shared, &commands, pid, target, streams, ramp).await?;
            println!("{}", format_row(&row));
            rows.push(row);
        }
    }
    schedule.abort();

    println!();
    println!(
        "summary (one proxy, pid {pid}, PoW {} bits):",
        args.pow_bits
    );
    for step in &steps {
        println!("{step}");
    }
    println!("{HEADER}");
    for row in &rows {
        println!("{}", format_row(row));
    }
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    if let Some(first) = shared
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        println!("first error: {first}");
    }
    let lost = shared.worker_links_lost.load(Ordering::Relaxed);
    if lost > 0 {
        println!("worker links lost: {}", thousands(lost));
    }
    match rows.iter().find(|r| r.workers == 1000 && r.streams == 10_000) {
        Some(row) => {
            let pass = row.rss < (1 << 30) && row.ttfb.1 < 50.0 && row.errors == 0;
            println!(
                "target: at 1,000 workers and 10,000 streams, proxy RSS < 1 GiB ({:.1} MiB) and p99 added TTFB < 50 ms ({:.2} ms), 0 errors ({}): {}",
                mib(row.rss),
                row.ttfb.1,
                thousands(row.errors),
                if pass { "PASS" } else { "FAIL" }
            );
        }
        None => println!("target: at 1,000 workers and 10,000 streams, proxy RSS < 1 GiB and p99 added TTFB < 50 ms: not measured (that point is not in --workers/--streams)"),
    }
    if errors > 0 {
        bail!("{} errors", thousands(errors));
    }
    Ok(())
}

async fn run_row(
    args: &ScaleArgs,
    shared: &Arc<Shared>,
    commands: &[mpsc::UnboundedSender<ClientCommand>],
    pid: u32,
    workers: usize,
    streams: usize,
    ramp: Duration,
) -> Result<Row> {
    shared.window_start.store(u64::MAX, Ordering::Relaxed);
    shared.window_end.store(0, Ordering::Relaxed);
    shared.running.store(true, Ordering::Relaxed);
    // Ramp: start the slots evenly over `ramp`, round-robin over the client connections.
    let ramp_started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let (mut started, mut next_client) = (0usize, 0usize);
    while started < streams {
        tick.tick().await;
        let elapsed = ramp_started.elapsed().as_secs_f64();
        let target = if ramp.is_zero() || elapsed >= ramp.as_secs_f64() {
            streams
        } else {
            ((elapsed / ramp.as_secs_f64()) * streams as f64).ceil() as usize
        }
        .min(streams);
        let mut counts = vec![0usize; commands.len()];
        for _ in started..target {
            counts[next_client] += 1;
            next_client = (next_client + 1) % commands.len();
        }
        for (sender, &count) in commands.iter().zip(&counts) {
            if count > 0 {
                let _ = sender.send(ClientCommand::Start(count));
            }
        }
        started = target;
    }
    // Measure.
    let window_started = Instant::now();
    shared.window_end.store(u64::MAX, Ordering::Relaxed);
    shared
        .window_start
        .store(shared.micros(window_started), Ordering::Relaxed);
    let cpu_before = cpu_seconds(pid);
    let bench_before = cpu_seconds(std::process::id());
    let machine_before = machine_cpu_seconds();
    let window = Duration::from_secs_f64(args.seconds);
    let mut rss = rss_bytes(pid);
    while window_started.elapsed() < window {
        let left = window.saturating_sub(window_started.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        rss = rss.max(rss_bytes(pid));
    }
    let window_ended = Instant::now();
    shared
        .window_end
        .store(shared.micros(window_ended), Ordering::Relaxed);
    let cpu = cpu_seconds(pid) - cpu_before;
    let bench_cpu = cpu_seconds(std::process::id()) - bench_before;
    let other_cpu = (machine_cpu_seconds() - machine_before - cpu - bench_cpu).max(0.0);
    let wall = window_ended.duration_since(window_started).as_secs_f64();
    // Drain: no new requests; wait for the ones in flight.
    shared.running.store(false, Ordering::Relaxed);
    let drain_deadline = Instant::now() + args.stream_length() + Duration::from_secs(15);
    while shared.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut replies = Vec::new();
    for sender in commands {
        let (reply, receive) = oneshot::channel();
        if sender.send(ClientCommand::Report(reply)).is_ok() {
            replies.push(receive);
        }
    }
    let mut total = ClientReport::default();
    for reply in replies {
        let report = reply.await.unwrap_or_default();
        total.ttfb.extend(report.ttfb);
        total.ttlb.extend(report.ttlb);
        total.completed += report.completed;
        total.errors += report.errors;
    }
    Ok(Row {
        workers,
        streams,
        per_second: total.completed as f64 / wall,
        ttfb: quantiles(&mut total.ttfb),
        ttlb: quantiles(&mut total.ttlb),
        rss,
        cpu: cpu / wall * 100.0,
        bench_cpu: bench_cpu / wall * 100.0,
        other_cpu: other_cpu / wall * 100.0,
        errors: total.errors,
    })
}
