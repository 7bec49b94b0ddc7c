//! A live COCOON connection: the sans-io session driven by two tokio tasks.
//!
//! The reader task decrypts bytes, feeds them to the [`Session`] and dispatches what comes out;
//! the writer task sleeps until someone queued output, then takes *everything* queued and
//! writes it with one TLS write. Senders never touch the socket: they encode into the session's
//! output buffer under a short lock and wake the writer. Under load many packets share one
//! write and one TLS record, which is what keeps the relay cheap.
//!
//! What a peer can make us hold is bounded by the connection's [`ConnectionLimits`]: a send that
//! would take the queue past its cap is refused (that caller alone fails, the link stays up);
//! the reader stops reading while the queue is over the cap (the session answers every ping, so
//! a peer that pings and never reads would otherwise grow the queue without end); a queue the
//! peer takes nothing of for the stall timeout closes the connection; and a connection the
//! daemon has not authenticated by its deadline is closed, whatever the peer sends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cocoon_proto::session::{Session, SessionEvent};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch, Notify};
// Session time and deadlines read tokio's clock (the system's monotonic clock, unless a test
// paused it), the one the timers sleep on: tests then move it on with `tokio::time::advance`.
use tokio::time::Instant;

use crate::limits::{ConnectionLimits, LimitCounters, UNAUTHENTICATED_MAX_QUEUED_OUTPUT};
use crate::{NetError, PeerIdentity};

/// Bytes a send adds to the queue besides its payload: the frame header and the TL wrapping
/// (constructor, query id, length prefix and padding), rounded up. Used only to decide whether
/// a send fits under the cap.
const SEND_OVERHEAD: usize = 32;
/// Incoming packets and queries buffered for the daemon before the reader stops reading
/// (backpressure onto TCP).
const INCOMING_CAPACITY: usize = 1024;
/// One TLS record's worth of plaintext per read: larger buffers only cost memory on every idle
/// connection (a proxy holds one per worker and per client; see ARCHITECTURE's memory figures).
const READ_BUFFER: usize = 16 << 10;
/// Output buffer capacity a connection keeps while idle; a burst may grow it, and it is given
/// back once the connection has nothing left to write, so an idle connection holds little.
const KEPT_WRITE_BUFFER: usize = 16 << 10;
/// How long the writer of a closed connection may still spend delivering output queued before
/// the close (a last answer, say). A peer that does not drain its socket in that time is
/// abandoned, so a stuck reader cannot hold the writer task and the socket forever.
const CLOSE_FLUSH_GRACE: Duration = Duration::from_secs(5);

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Something the peer sent that the daemon must handle.
#[derive(Debug)]
pub enum Incoming {
    /// A one-way `tcp.packet` payload.
    Packet(Vec<u8>),
    /// A `tcp.query` that expects exactly one answer or error.
    Query(IncomingQuery),
}

/// A query from the peer. Answer it with [`IncomingQuery::answer`] or [`IncomingQuery::fail`];
/// dropping it unanswered leaves the peer to time out.
#[derive(Debug)]
pub struct IncomingQuery {
    /// Query id chosen by the peer.
    pub id: i64,
    /// The boxed TL request.
    pub data: Vec<u8>,
    handle: ConnectionHandle,
}

impl IncomingQuery {
    /// Sends `tcp.queryAnswer`. An answer that does not fit in the peer's queue (see
    /// [`ConnectionLimits::max_queued_output`]) is refused with [`NetError::Backpressure`] and
    /// the peer is sent a `tcp.queryError` instead, so this query fails alone and the peer does
    /// not wait for it until its timeout.
    pub fn answer(self, data: &[u8]) -> Result<(), NetError> {
        let result = self.handle.with_state(data.len(), |state| {
            state.session.send_query_answer(self.id, data)
        });
        if let Err(NetError::Backpressure {
            queued,
            size,
            limit,
        }) = &result
        {
            let message = format!(
                "answer of {size} bytes refused: {queued} bytes already queued for this connection, cap {limit}"
            );
            // If even this does not fit, the peer times the query out.
            let _ = self.handle.with_state(message.len(), |state| {
                state
                    .session
                    .send_query_error(self.id, ANSWER_REFUSED_CODE, &message)
            });
        }
        result
    }

    /// Sends `tcp.queryError`.
    pub fn fail(self, code: i32, message: &str) -> Result<(), NetError> {
        self.handle.with_state(message.len(), |state| {
            state.session.send_query_error(self.id, code, message)
        })
    }
}

/// The `tcp.queryError` code sent in place of an answer the peer's queue had no room for
/// (HTTP's 503: try again when the connection is less busy).
pub const ANSWER_REFUSED_CODE: i32 = 503;

/// Byte and packet counters of one connection.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Decrypted bytes received.
    pub bytes_received: AtomicU64,
    /// Plaintext bytes handed to TLS.
    pub bytes_sent: AtomicU64,
}

struct State {
    session: Session,
    pending_queries: HashMap<i64, oneshot::Sender<Result<Vec<u8>, NetError>>>,
    close_reason: Option<String>,
    /// The most output this connection ever had queued; the shared high-water mark in
    /// [`LimitCounters`] is only touched when this grows.
    max_queued: usize,
    /// Bytes the writer took from the session and has not written yet.
    writing: usize,
    /// The reader stopped reading for a full queue and waits for `output_drained`. Set and
    /// read under the lock, so the writer wakes the reader only then (a wake-up per write
    /// would cost every relayed message a task switch).
    reader_paused: bool,
}

impl State {
    /// Output held for the peer: queued in the session plus taken by the writer, unwritten.
    fn queued(&self) -> usize {
        self.session.pending_output() + self.writing
    }
}

struct Shared {
    id: u64,
    peer: PeerIdentity,
    remote: SocketAddr,
    started: Instant,
    state: Mutex<State>,
    writer_wake: Notify,
    closed: watch::Sender<bool>,
    ready: watch::Sender<bool>,
    stats: ConnectionStats,
    limits: ConnectionLimits,
    counters: Arc<LimitCounters>,
    authenticated: AtomicBool,
    /// When the daemon must have authenticated the connection (see
    /// [`ConnectionLimits::auth_timeout`]); moved by [`ConnectionHandle::defer_auth_deadline`].
    auth_deadline: Mutex<Option<Instant>>,
    /// Woken by the writer after each write, so a reader that paused for a full queue resumes.
    output_drained: Notify,
}

/// A cheap, clonable handle for sending on a connection.
#[derive(Clone)]
pub struct ConnectionHandle(Arc<Shared>);

impl std::fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHandle")
            .field("id", &self.0.id)
            .field("remote", &self.0.remote)
            .finish()
    }
}

/// A connection as handed to a daemon: a handle to send and a stream of what arrives.
#[derive(Debug)]
pub struct Connection {
    /// Send side.
    pub handle: ConnectionHandle,
    /// Packets and queries from the peer; ends when the connection closes.
    pub incoming: mpsc::Receiver<Incoming>,
}

impl ConnectionHandle {
    /// Process-unique id of this connection, for logs and maps.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The peer as proven by the handshake.
    pub fn peer(&self) -> &PeerIdentity {
        &self.0.peer
    }

    /// The peer's socket address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.0.remote
    }

    /// Counters.
    pub fn stats(&self) -> &ConnectionStats {
        &self.0.stats
    }

    fn now_ms(&self) -> u64 {
        self.0.started.elapsed().as_millis() as u64
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic while encoding; the state is still a valid session
        // (every mutation is a complete append), so continuing is safe.
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cap on queued output now: the configured one, or less before authentication.
    fn queue_cap(&self) -> usize {
        if self.is_authenticated() {
            self.0.limits.max_queued_output
        } else {
            self.0
                .limits
                .max_queued_output
                .min(UNAUTHENTICATED_MAX_QUEUED_OUTPUT)
        }
    }

    /// Runs `f` on the open connection's state, then wakes the writer. Refuses when closed, and
    /// when `payload_len` more bytes (plus framing) would take the queue past its cap: that
    /// send alone fails, the connection stays up.
    fn with_state<T>(
        &self,
        payload_len: usize,
        f: impl FnOnce(&mut State) -> Result<T, cocoon_proto::session::SessionError>,
    ) -> Result<T, NetError> {
        let limit = self.queue_cap();
        let mut state = self.lock();
        if let Some(reason) = &state.close_reason {
            return Err(NetError::Closed(reason.clone()));
        }
        let queued = state.queued();
        let size = payload_len.saturating_add(SEND_OVERHEAD);
        if queued.saturating_add(size) > limit {
            drop(state);
            self.0
                .counters
                .refused_sends
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                connection = self.0.id,
                remote = %self.0.remote,
                queued,
                size,
                limit,
                "send refused: the peer's queue is full"
            );
            return Err(NetError::Backpressure {
                queued,
                size,
                limit,
            });
        }
        let result = f(&mut state)?;
        self.note_queued(&mut state);
        drop(state);
        self.0.writer_wake.notify_one();
        Ok(result)
    }

    /// Records a new high-water mark of queued output, if this is one.
    fn note_queued(&self, state: &mut State) {
        let queued = state.queued();
        if queued > state.max_queued {
            state.max_queued = queued;
            self.0
                .counters
                .max_queued_output
                .fetch_max(queued as u64, Ordering::Relaxed);
        }
    }

    /// Bytes queued for the peer and not yet handed to TLS.
    pub fn queued_output(&self) -> usize {
        self.lock().queued()
    }

    /// The most bytes ever queued for the peer on this connection.
    pub fn max_queued_output(&self) -> usize {
        self.lock().max_queued
    }

    /// Tells the connection that the daemon has authenticated its peer: the authentication
    /// deadline no longer applies and the full output cap does.
    pub fn mark_authenticated(&self) {
        self.0.authenticated.store(true, Ordering::Relaxed);
        // The reader may be paused at the smaller cap.
        self.0.output_drained.notify_one();
    }

    /// Whether [`ConnectionHandle::mark_authenticated`] was called (or no deadline applies).
    pub fn is_authenticated(&self) -> bool {
        self.0.authenticated.load(Ordering::Relaxed)
    }

    /// Moves the authentication deadline to `from_now` from now, for an authentication that
    /// legitimately takes longer (waiting for a transaction on chain). No effect once
    /// authenticated or when no deadline applies.
    pub fn defer_auth_deadline(&self, from_now: Duration) {
        let mut deadline = self
            .0
            .auth_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(at) = deadline.as_mut() {
            *at = (*at).max(Instant::now() + from_now);
        }
        // The reader wakes at the old deadline, finds the new one and sleeps on.
    }

    fn auth_deadline(&self) -> Option<Instant> {
        if self.is_authenticated() {
            return None;
        }
        *self
            .0
            .auth_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a one-way `tcp.packet`. Never blocks: the writer task sends it.
    pub fn send_packet(&self, data: &[u8]) -> Result<(), NetError> {
        self.with_state(data.len(), |state| state.session.send_packet(data))
    }

    /// Sends a `tcp.query` and waits for its answer.
    pub async fn query(&self, data: &[u8], timeout: Duration) -> Result<Vec<u8>, NetError> {
        let (sender, receiver) = oneshot::channel();
        let id = self.with_state(data.len(), |state| {
            let id = state.session.send_query(data)?;
            state.pending_queries.insert(id, sender);
            Ok(id)
        })?;
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(NetError::Closed("connection dropped".into())),
            Err(_) => {
                self.lock().pending_queries.remove(&id);
                Err(NetError::Timeout)
            }
        }
    }

    /// Closes the connection now: queued output may be lost and the tasks exit.
    pub fn close(&self, reason: &str) {
        let pending = {
            let mut state = self.lock();
            if state.close_reason.is_none() {
                state.close_reason = Some(reason.to_string());
            }
            std::mem::take(&mut state.pending_queries)
        };
        for (_, sender) in pending {
            let _ = sender.send(Err(NetError::Closed(reason.to_string())));
        }
        self.0.closed.send_replace(true);
    }

    /// A guard that closes the connection when dropped, so a serving task that ends or is
    /// aborted never leaves its socket behind.
    pub fn close_on_drop(&self) -> CloseOnDrop {
        CloseOnDrop(self.clone())
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        *self.0.closed.borrow()
    }

    /// Why the connection closed, if it did.
    pub fn close_reason(&self) -> Option<String> {
        self.lock().close_reason.clone()
    }

    /// Resolves once the connection is closed.
    pub async fn closed(&self) {
        wait_true(&mut self.0.closed.subscribe()).await;
    }

    /// Resolves once the `tcp.connect`/`tcp.connected` handshake completed (or it closed).
    pub(crate) async fn ready(&self) -> Result<(), NetError> {
        let mut ready = self.0.ready.subscribe();
        let mut closed = self.0.closed.subscribe();
        tokio::select! {
            _ = wait_true(&mut ready) => Ok(()),
            _ = wait_true(&mut closed) => Err(NetError::Closed(
                self.close_reason().unwrap_or_else(|| "closed during handshake".into()),
            )),
        }
    }
}

/// Resolves once the watched flag is true (or its sender is gone).
async fn wait_true(receiver: &mut watch::Receiver<bool>) {
    // The guard returned by `wait_for` is not `Send`; drop it before returning.
    let _ = receiver.wait_for(|value| *value).await.map(|_| ());
}

/// Closes its connection when dropped; see [`ConnectionHandle::close_on_drop`].
#[derive(Debug)]
pub struct CloseOnDrop(ConnectionHandle);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close("serving task ended");
    }
}

/// How a connection is bounded: its limits, the counters it reports to, and when it was
/// accepted (the authentication deadline counts from there).
pub(crate) struct Bounds {
    pub limits: ConnectionLimits,
    pub counters: Arc<LimitCounters>,
    pub accepted_at: Instant,
}

/// Starts the reader and writer tasks for an established TLS stream.
pub(crate) fn spawn_connection<S>(
    stream: S,
    session: Session,
    peer: PeerIdentity,
    remote: SocketAddr,
    bounds: Bounds,
) -> Connection
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (closed, _) = watch::channel(false);
    let (ready, _) = watch::channel(false);
    let auth_deadline = bounds
        .limits
        .auth_timeout
        .map(|timeout| bounds.accepted_at + timeout);
    let shared = Arc::new(Shared {
        id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
        peer,
        remote,
        started: Instant::now(),
        state: Mutex::new(State {
            session,
            pending_queries: HashMap::new(),
            close_reason: None,
            max_queued: 0,
            writing: 0,
            reader_paused: false,
        }),
        writer_wake: Notify::new(),
        closed,
        ready,
        stats: ConnectionStats::default(),
        limits: bounds.limits,
        counters: bounds.counters,
        authenticated: AtomicBool::new(auth_deadline.is_none()),
        auth_deadline: Mutex::new(auth_deadline),
        output_drained: Notify::new(),
    });
    let handle = ConnectionHandle(shared);
    let (incoming_sender, incoming) = mpsc::channel(INCOMING_CAPACITY);
    let (reader, writer) = tokio::io::split(stream);
    // Output may already be queued (the client's tcp.connect).
    handle.0.writer_wake.notify_one();
    let reader_handle = handle.clone();
    tokio::spawn(async move {
        let result = read_loop(&reader_handle, reader, incoming_sender).await;
        let reason = match result {
            Ok(()) => "closed".to_string(),
            Err(error) => error.to_string(),
        };
        tracing::debug!(connection = reader_handle.id(), %reason, "connection reader stopped");
        reader_handle.close(&reason);
    });
    let writer_handle = handle.clone();
    tokio::spawn(async move {
        if let Err(error) = write_loop(&writer_handle, writer).await {
            writer_handle.close(&error.to_string());
        }
    });
    Connection { handle, incoming }
}

/// Sleeps until `at` (a session time in ms), forever for `None`.
async fn sleep_until_ms(handle: &ConnectionHandle, at: Option<u64>) {
    match at {
        Some(at) => {
            let wait = at.saturating_sub(handle.now_ms());
            tokio::time::sleep(Duration::from_millis(wait)).await
        }
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, forever for `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn read_loop<R: AsyncRead>(
    handle: &ConnectionHandle,
    reader: R,
    incoming: mpsc::Sender<Incoming>,
) -> Result<(), NetError> {
    tokio::pin!(reader);
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut events = Vec::new();
    let mut closed = handle.0.closed.subscribe();
    loop {
        // Over the cap only the session's own answers (pongs) can have put us there: stop
        // reading until the peer takes some, so a peer that pings and never reads is pushed
        // back through TCP instead of growing our queue.
        let cap = handle.queue_cap();
        let (deadline, paused) = {
            let mut state = handle.lock();
            let paused = state.queued() > cap;
            state.reader_paused = paused;
            (state.session.poll_timeout(), paused)
        };
        let auth_deadline = handle.auth_deadline();
        tokio::select! {
            read = reader.read(&mut buffer), if !paused => {
                let n = read?;
                if n == 0 {
                    return Err(NetError::Closed("peer closed the connection".into()));
                }
                handle.0.stats.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                {
                    let now = handle.now_ms();
                    let mut state = handle.lock();
                    state.session.receive(now, &buffer[..n])?;
                    while let Some(event) = state.session.poll_event() {
                        events.push(event);
                    }
                    if state.session.pending_output() > 0 {
                        handle.note_queued(&mut state);
                        handle.0.writer_wake.notify_one();
                    }
                }
                for event in events.drain(..) {
                    // A daemon that stopped reading `incoming` must not keep this task (and the
                    // socket) alive after the connection was closed.
                    tokio::select! {
                        result = dispatch(handle, &incoming, event) => result?,
                        _ = wait_true(&mut closed) => return Ok(()),
                    }
                }
            }
            _ = handle.0.output_drained.notified(), if paused => {}
            _ = sleep_until(auth_deadline) => {
                // Re-checked: the daemon may have authenticated or deferred it meanwhile.
                if handle.auth_deadline().is_some_and(|at| at <= Instant::now()) {
                    handle.0.counters.auth_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        connection = handle.id(),
                        remote = %handle.remote_addr(),
                        "closing a connection that did not authenticate in time"
                    );
                    handle.close("not authenticated in time");
                    return Ok(());
                }
            }
            _ = sleep_until_ms(handle, deadline) => {
                let now = handle.now_ms();
                handle.lock().session.handle_timeout(now)?;
                handle.0.writer_wake.notify_one();
            }
            _ = wait_true(&mut closed) => return Ok(()),
        }
    }
}

async fn dispatch(
    handle: &ConnectionHandle,
    incoming: &mpsc::Sender<Incoming>,
    event: SessionEvent,
) -> Result<(), NetError> {
    let to_daemon = match event {
        SessionEvent::Connected => {
            handle.0.ready.send_replace(true);
            return Ok(());
        }
        SessionEvent::Packet(data) => Incoming::Packet(data),
        SessionEvent::Query { id, data } => Incoming::Query(IncomingQuery {
            id,
            data,
            handle: handle.clone(),
        }),
        SessionEvent::QueryAnswer { id, data } => {
            if let Some(sender) = handle.lock().pending_queries.remove(&id) {
                let _ = sender.send(Ok(data));
            }
            return Ok(());
        }
        SessionEvent::QueryError { id, code, message } => {
            if let Some(sender) = handle.lock().pending_queries.remove(&id) {
                let _ = sender.send(Err(NetError::Remote { code, message }));
            }
            return Ok(());
        }
    };
    incoming
        .send(to_daemon)
        .await
        .map_err(|_| NetError::Closed("nobody reads this connection".into()))
}

async fn write_loop<W: AsyncWrite>(handle: &ConnectionHandle, writer: W) -> Result<(), NetError> {
    tokio::pin!(writer);
    let mut buffer = Vec::new();
    let mut closed = handle.0.closed.subscribe();
    loop {
        let is_closed = {
            let mut state = handle.lock();
            state.session.take_output(&mut buffer);
            // Still counted as queued until written, so the cap bounds both buffers together.
            state.writing = buffer.len();
            state.close_reason.is_some()
        };
        if buffer.is_empty() {
            if is_closed {
                let _ = writer.shutdown().await;
                return Ok(());
            }
            // Going idle: give back what a burst grew. Not after every write, which would
            // reallocate on a busy connection each time; the session's buffer and this one are
            // swapped turn by turn, so both are trimmed over two idle spells.
            buffer.shrink_to(KEPT_WRITE_BUFFER);
            tokio::select! {
                _ = handle.0.writer_wake.notified() => continue,
                _ = wait_true(&mut closed) => continue,
            }
        }
        let abandon = async {
            wait_true(&mut closed).await;
            tokio::time::sleep(CLOSE_FLUSH_GRACE).await
        };
        let stalled = tokio::select! {
            result = write_buffer(handle, &mut writer, &buffer) => result?,
            _ = abandon => return Ok(()),
        };
        if stalled {
            let queued = handle.queued_output();
            handle
                .0
                .counters
                .stalled_peers_cut
                .fetch_add(1, Ordering::Relaxed);
            let stall = handle.0.limits.write_stall_timeout;
            tracing::info!(
                connection = handle.id(),
                remote = %handle.remote_addr(),
                queued,
                stall_secs = stall.as_secs_f64(),
                "closing a connection whose peer does not read"
            );
            handle.close(&format!(
                "peer does not read its data: {queued} bytes queued, none taken for {stall:?}"
            ));
            return Ok(());
        }
        buffer.clear();
    }
}

/// Writes `buffer` out; `Ok(true)` when the peer took nothing for the stall timeout (one write
/// call or the final flush making no progress that long).
async fn write_buffer<W: AsyncWrite>(
    handle: &ConnectionHandle,
    writer: &mut std::pin::Pin<&mut W>,
    buffer: &[u8],
) -> Result<bool, NetError> {
    let stall = handle.0.limits.write_stall_timeout;
    let mut written = 0;
    while written < buffer.len() {
        let n = match within(stall, writer.as_mut().write(&buffer[written..])).await {
            Some(result) => result?,
            None => return Ok(true),
        };
        if n == 0 {
            return Err(NetError::Io(std::io::ErrorKind::WriteZero.into()));
        }
        written += n;
        let reader_paused = {
            let mut state = handle.lock();
            state.writing = state.writing.saturating_sub(n);
            state.reader_paused
        };
        handle
            .0
            .stats
            .bytes_sent
            .fetch_add(n as u64, Ordering::Relaxed);
        if reader_paused {
            // The reader paused for a full queue may go on.
            handle.0.output_drained.notify_one();
        }
    }
    match within(stall, writer.as_mut().flush()).await {
        Some(result) => result?,
        None => return Ok(true),
    }
    Ok(false)
}

/// Runs `future` for at most `limit`; `None` when it took longer. A future that is ready at
/// once (most socket writes, a small request body already read) is never given a timer, which
/// would cost two timer-wheel operations on every request of the relay path.
pub async fn within<F: std::future::Future>(limit: Duration, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match future.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await;
    match first {
        Some(output) => Some(output),
        None => tokio::time::timeout(limit, future).await.ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::within;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn within_returns_what_is_ready_and_gives_up_on_what_stalls() {
        assert_eq!(within(Duration::from_secs(1), async { 7 }).await, Some(7));
        // Ready after a wait shorter than the limit: the timer armed on the first Pending.
        let slow = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            8
        };
        assert_eq!(within(Duration::from_secs(1), slow).await, Some(8));
        let start = tokio::time::Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(within(Duration::from_secs(3), never).await, None);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
