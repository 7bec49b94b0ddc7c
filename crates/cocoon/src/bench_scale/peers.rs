//! The bench's peers of the proxy: workers that answer every request themselves (a head at
//! once, then parts from one shared timer) and clients that run a closed loop of streaming
//! requests, all over real TCP + PoW + TLS connections, with messages pre-encoded once.

use super::*;

pub(super) const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// The scheduler's tick for the bench workers' parts (one wake-up for all workers).
pub(super) const PART_TICK: Duration = Duration::from_millis(5);
/// The SSE chunks of a bench answer: the head's, each part's, the final part's.
pub(super) const FIRST_CHUNK: &[u8] =
    b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n";
pub(super) const PART_CHUNK: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"tok\"}}]}\n\n";
pub(super) const FINAL_CHUNK: &[u8] = b"data: [DONE]\n\n";

/// An encoded message with a request id to patch in: built once, copied per send, no
/// allocation on the hot path.
pub(super) struct Template {
    pub(super) bytes: Vec<u8>,
    pub(super) id_at: usize,
}

pub(super) const MARK: [u8; 32] = [0xa5; 32];

impl Template {
    /// `bytes` encodes the message with [`MARK`] as its request id.
    pub(super) fn new(bytes: Vec<u8>) -> Result<Template> {
        let id_at = bytes
            .windows(32)
            .position(|w| w == MARK)
            .context("template without a request id")?;
        Ok(Template { bytes, id_at })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>, id: &[u8; 32]) {
        out.clear();
        out.extend_from_slice(&self.bytes);
        out[self.id_at..self.id_at + 32].copy_from_slice(id);
    }
}

pub(super) struct Templates {
    pub(super) head: Template,
    pub(super) part: Template,
    pub(super) last: Template,
    pub(super) request: Template,
}

pub(super) fn templates(parts: u32) -> Result<Templates> {
    let head = HttpResponse {
        http_version: "HTTP/1.1".into(),
        status_code: 200,
        reason: "OK".into(),
        headers: vec![HttpHeader {
            name: "Content-Type".into(),
            value: "text/event-stream".into(),
        }],
        payload: FIRST_CHUNK.to_vec(),
    };
    let head = ProxyQueryAnswer::Answer(ProxyQueryAnswerEx {
        request_id: MARK,
        answer: head.to_bytes(),
        final_info: None,
    });
    let part = ProxyQueryAnswer::Part(ProxyQueryAnswerPartEx {
        request_id: MARK,
        answer: PART_CHUNK.to_vec(),
        final_info: None,
    });
    let completion = i64::from(parts);
    let last = ProxyQueryAnswer::Part(ProxyQueryAnswerPartEx {
        request_id: MARK,
        answer: FINAL_CHUNK.to_vec(),
        final_info: Some(ProxyQueryFinalInfo {
            tokens_used: TokensUsed {
                prompt_tokens_used: 10,
                cached_tokens_used: 0,
                completion_tokens_used: completion,
                reasoning_tokens_used: 0,
                total_tokens_used: 10 + completion,
            },
            worker_debug: None,
            timings: None,
            receipt: None,
        }),
    });
    let http = HttpRequest {
        method: "POST".into(),
        url: "/v1/chat/completions".into(),
        http_version: "HTTP/1.1".into(),
        headers: vec![HttpHeader {
            name: "Content-Type".into(),
            value: "application/json".into(),
        }],
        payload:
            br#"{"model":"scale-model","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
                .to_vec(),
    };
    let request = ClientRunQueryEx {
        model_name: MODEL.into(),
        query: http.to_bytes(),
        max_coefficient: 1_000_000,
        max_tokens: 1000,
        timeout: 600.0,
        request_id: MARK,
        min_config_version: 0,
        enable_debug: None,
    };
    let templates = Templates {
        head: Template::new(head.to_bytes())?,
        part: Template::new(part.to_bytes())?,
        last: Template::new(last.to_bytes())?,
        request: Template::new(request.to_bytes())?,
    };
    // Patching must give a valid message with the new id.
    let id = [7u8; 32];
    let mut out = Vec::new();
    templates.request.write(&mut out, &id);
    if ClientRunQueryEx::from_bytes(&out)?.request_id != id {
        bail!("request template patched at the wrong place");
    }
    for template in [&templates.head, &templates.part, &templates.last] {
        template.write(&mut out, &id);
        if *ProxyQueryAnswer::from_bytes(&out)?.request_id() != id {
            bail!("answer template patched at the wrong place");
        }
    }
    Ok(templates)
}

/// A part due to be sent by a bench worker.
pub(super) struct Due {
    pub(super) at: Instant,
    pub(super) seq: u64,
    pub(super) parts_sent: u32,
    pub(super) id: [u8; 32],
    pub(super) link: ConnectionHandle,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

/// State shared by the bench's workers, clients and driver.
pub(super) struct Shared {
    pub(super) templates: Templates,
    pub(super) parts: u32,
    pub(super) interval: Duration,
    /// Parts waiting for their time, across all workers.
    pub(super) schedule: Mutex<BinaryHeap<Due>>,
    pub(super) seq: AtomicU64,
    /// Whether a finished request starts the next one in its slot.
    pub(super) running: AtomicBool,
    pub(super) epoch: Instant,
    /// The measured window, microseconds since `epoch` (start = u64::MAX: no window).
    pub(super) window_start: AtomicU64,
    pub(super) window_end: AtomicU64,
    pub(super) in_flight: AtomicUsize,
    pub(super) next_id: AtomicU64,
    pub(super) worker_links_lost: AtomicU64,
    /// The first error message seen, for the report.
    pub(super) first_error: Mutex<Option<String>>,
}

impl Shared {
    pub(super) fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    pub(super) fn in_window(&self, at: Instant) -> bool {
        let t = self.micros(at);
        t >= self.window_start.load(Ordering::Relaxed)
            && t < self.window_end.load(Ordering::Relaxed)
    }

    pub(super) fn note_error(&self, message: impl FnOnce() -> String) {
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(message());
        }
    }
}

// ---------------------------------------------------------------- bench workers

pub(super) async fn connect_worker(
    connector: Arc<Connector>,
    address: Arc<str>,
    index: usize,
    max_active: i32,
) -> Result<Connection> {
    let connection = connector.connect(&address).await?;
    let handle = &connection.handle;
    let params = WorkerParams {
        worker_owner_address: format!("bench-worker-{index}"),
        model: MODEL.into(),
        coefficient: 1000,
        limits: Some(WorkerLimits {
            is_test: true,
            proxy_cnt: 1,
            max_active_requests: max_active,
        }),
        supports_cancel: false,
        proto_version: Some(ProtoVersionRange {
            min: codes::MIN_PROTO_VERSION,
            max: codes::PROTO_VERSION,
        }),
    };
    let answer = handle
        .query(&WorkerConnectToProxy { params }.to_bytes(), QUERY_TIMEOUT)
        .await?;
    WorkerConnectedToProxy::from_bytes(&answer)?;
    let balance = WorkerCompareBalanceWithProxy {
        tokens_committed_to_blockchain: 0,
        tokens_committed_to_db: 0,
        max_tokens: 0,
    };
    let answer = handle.query(&balance.to_bytes(), QUERY_TIMEOUT).await?;
    WorkerCompareBalanceWithProxyResult::from_bytes(&answer)?;
    let complete = WorkerProxyHandshakeComplete { is_disabled: false };
    let answer = handle.query(&complete.to_bytes(), QUERY_TIMEOUT).await?;
    WorkerProxyHandshakeCompleted::from_bytes(&answer)?;
    Ok(connection)
}

/// One bench worker: answers the head at once and hands the parts to the shared schedule.
pub(super) async fn serve_worker(connection: Connection, shared: Arc<Shared>) {
    let Connection {
        handle,
        mut incoming,
    } = connection;
    let _close = handle.close_on_drop();
    let mut out = Vec::with_capacity(256);
    while let Some(message) = incoming.recv().await {
        match message {
            Incoming::Packet(data) => match ProxyRunQueryEx::from_bytes(&data) {
                Ok(query) => {
                    shared.templates.head.write(&mut out, &query.request_id);
                    if handle.send_packet(&out).is_err() {
                        break;
                    }
                    let due = Due {
                        at: Instant::now() + shared.interval,
                        seq: shared.seq.fetch_add(1, Ordering::Relaxed),
                        parts_sent: 0,
                        id: query.request_id,
                        link: handle.clone(),
                    };
                    shared
                        .schedule
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(due);
                }
                Err(error) => shared.note_error(|| format!("worker got a bad packet: {error}")),
            },
            Incoming::Query(query) => {
                let _ = query.fail(codes::BAD_REQUEST, "bench workers answer no queries");
            }
        }
    }
    shared.worker_links_lost.fetch_add(1, Ordering::Relaxed);
    shared.note_error(|| {
        format!(
            "a worker link closed: {}",
            handle.close_reason().unwrap_or_default()
        )
    });
}

/// Sends every due part, for all workers, every [`PART_TICK`].
pub(super) async fn run_schedule(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PART_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut due = Vec::new();
    let mut out = Vec::with_capacity(256);
    loop {
        tick.tick().await;
        let now = Instant::now();
        {
            let mut schedule = shared.schedule.lock().unwrap_or_else(|p| p.into_inner());
            while schedule.peek().is_some_and(|d| d.at <= now) {
                due.extend(schedule.pop());
            }
        }
        if due.is_empty() {
            continue;
        }
        for part in &mut due {
            part.parts_sent += 1;
            let template = if part.parts_sent >= shared.parts {
                &shared.templates.last
            } else {
                &shared.templates.part
            };
            template.write(&mut out, &part.id);
            // A closed link is noticed (and counted) by its worker task.
            let _ = part.link.send_packet(&out);
            part.at += shared.interval;
        }
        let mut schedule = shared.schedule.lock().unwrap_or_else(|p| p.into_inner());
        for part in due.drain(..) {
            if part.parts_sent < shared.parts && !part.link.is_closed() {
                schedule.push(part);
            }
        }
    }
}

// ---------------------------------------------------------------- bench clients

pub(super) async fn connect_client(
    connector: Arc<Connector>,
    address: Arc<str>,
    index: usize,
) -> Result<Connection> {
    let connection = connector.connect(&address).await?;
    let handle = &connection.handle;
    let connect = ClientConnectToProxy {
        params: ClientParams {
            client_owner_address: format!("bench-client-{index}"),
            is_test: Some(true),
            proto_version: Some(ProtoVersionRange {
                min: codes::MIN_PROTO_VERSION,
                max: codes::PROTO_VERSION,
            }),
        },
        min_config_version: 0,
    };
    let answer = handle.query(&connect.to_bytes(), QUERY_TIMEOUT).await?;
    ClientConnectedToProxy::from_bytes(&answer)?;
    let authorize = ClientToProxyQuery::AuthorizeShort(ClientAuthorizeWithProxyShort {
        data: b"bench".to_vec(),
    });
    let answer = handle.query(&authorize.to_bytes(), QUERY_TIMEOUT).await?;
    match AuthorizationWithProxy::from_bytes(&answer)? {
        AuthorizationWithProxy::Success { .. } => Ok(connection),
        AuthorizationWithProxy::Failed { error_code, error } => {
            bail!("authorization refused: {error_code} {error}")
        }
    }
}

pub(super) enum ClientCommand {
    /// Start this many new streams (slots).
    Start(usize),
    /// Hand over (and reset) the figures; requests still pending count as unfinished.
    Report(oneshot::Sender<ClientReport>),
}

#[derive(Default)]
pub(super) struct ClientReport {
    /// Microseconds.
    pub(super) ttfb: Vec<u32>,
    pub(super) ttlb: Vec<u32>,
    pub(super) completed: u64,
    pub(super) errors: u64,
}

pub(super) struct Pending {
    pub(super) sent: Instant,
    pub(super) head: bool,
    pub(super) parts: u32,
}

pub(super) struct ClientLoop {
    pub(super) shared: Arc<Shared>,
    pub(super) handle: ConnectionHandle,
    pub(super) pending: HashMap<[u8; 32], Pending>,
    pub(super) report: ClientReport,
    pub(super) out: Vec<u8>,
}

impl ClientLoop {
    pub(super) fn send(&mut self) {
        let mut id = [0u8; 32];
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        id[..8].copy_from_slice(&n.to_le_bytes());
        id[8..16].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
        self.shared.templates.request.write(&mut self.out, &id);
        let sent = Instant::now();
        match self.handle.send_packet(&self.out) {
            Ok(()) => {
                self.pending.insert(
                    id,
                    Pending {
                        sent,
                        head: false,
                        parts: 0,
                    },
                );
                self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.report.errors += 1;
                self.shared
                    .note_error(|| format!("client could not send: {error}"));
            }
        }
    }

    /// A request ended (well or not): its slot goes on while the row runs.
    pub(super) fn finish(&mut self, id: &[u8; 32]) -> Option<Pending> {
        let pending = self.pending.remove(id)?;
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.shared.running.load(Ordering::Relaxed) {
            self.send();
        }
        Some(pending)
    }

    pub(super) fn on_answer(&mut self, data: &[u8]) {
        let now = Instant::now();
        let micros = |since: Instant| {
            now.saturating_duration_since(since)
                .as_micros()
                .min(u32::MAX as u128) as u32
        };
        match ClientQueryAnswer::from_bytes(data) {
            Ok(ClientQueryAnswer::Answer(answer)) => {
                let Some(pending) = self.pending.get_mut(&answer.request_id) else {
                    return;
                };
                let duplicate = pending.head;
                pending.head = true;
                let sent = pending.sent;
                if duplicate || answer.final_info.is_some() {
                    self.report.errors += 1;
                    self.shared
                        .note_error(|| "a second head, or a head that ended the answer".into());
                    self.finish(&answer.request_id);
                } else if self.shared.in_window(now) {
                    self.report.ttfb.push(micros(sent));
                }
            }
            Ok(ClientQueryAnswer::Part(part)) => {
                let Some(pending) = self.pending.get_mut(&part.request_id) else {
                    return;
                };
                pending.parts += 1;
                if part.final_info.is_none() {
                    return;
                }
                let Some(done) = self.finish(&part.request_id) else {
                    return;
                };
                if done.head && done.parts == self.shared.parts {
                    if self.shared.in_window(now) {
                        self.report.ttlb.push(micros(done.sent));
                        self.report.completed += 1;
                    }
                } else {
                    self.report.errors += 1;
                    let (head, parts) = (done.head, done.parts);
                    self.shared.note_error(|| {
                        format!("an answer ended with head={head} and {parts} parts")
                    });
                }
            }
            Ok(ClientQueryAnswer::Error(error)) => {
                if self.finish(&error.request_id).is_some() {
                    self.report.errors += 1;
                    self.shared.note_error(|| {
                        format!("error answer {}: {}", error.error_code, error.error)
                    });
                }
            }
            Err(error) => {
                self.report.errors += 1;
                self.shared
                    .note_error(|| format!("client got a bad packet: {error}"));
            }
        }
    }

    pub(super) fn lost(&mut self) {
        let lost = self.pending.len();
        self.report.errors += lost as u64;
        self.shared.in_flight.fetch_sub(lost, Ordering::Relaxed);
        self.pending.clear();
        let reason = self.handle.close_reason().unwrap_or_default();
        self.shared
            .note_error(|| format!("a client connection closed: {reason}"));
    }
}

/// One client connection: every send and every answer of its slots happens in this task.
pub(super) async fn serve_client(
    connection: Connection,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<ClientCommand>,
) {
    let Connection {
        handle,
        mut incoming,
    } = connection;
    let _close = handle.close_on_drop();
    let mut state = ClientLoop {
        shared,
        handle,
        pending: HashMap::new(),
        report: ClientReport::default(),
        out: Vec::with_capacity(256),
    };
    let mut alive = true;
    loop {
        tokio::select! {
            message = incoming.recv(), if alive => match message {
                Some(Incoming::Packet(data)) => state.on_answer(&data),
                Some(Incoming::Query(query)) => {
                    let _ = query.fail(codes::BAD_REQUEST, "clients answer no queries");
                }
                None => {
                    alive = false;
                    state.lost();
                }
            },
            command = commands.recv() => match command {
                None => break,
                Some(ClientCommand::Start(n)) => {
                    for _ in 0..n {
                        if alive {
                            state.send();
                        } else {
                            state.report.errors += 1;
                        }
                    }
                }
                Some(ClientCommand::Report(reply)) => {
                    let unfinished = state.pending.len();
                    state.report.errors += unfinished as u64;
                    if unfinished > 0 {
                        state.shared.note_error(|| format!("{unfinished} requests unfinished after the drain"));
                    }
                    state.shared.in_flight.fetch_sub(unfinished, Ordering::Relaxed);
                    state.pending.clear();
                    let _ = reply.send(std::mem::take(&mut state.report));
                }
            },
        }
    }
}
