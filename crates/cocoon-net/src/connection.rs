//! A live COCOON connection: the sans-io session driven by two tokio tasks.
//!
//! The reader task decrypts bytes, feeds them to the [`Session`] and dispatches what comes out;
//! the writer task sleeps until someone queued output, then takes *everything* queued and
//! writes it with one TLS write. Senders never touch the socket: they encode into the session's
//! output buffer under a short lock and wake the writer. Under load many packets share one
//! write and one TLS record, which is what keeps the relay cheap.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cocoon_proto::session::{Session, SessionEvent};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::{NetError, PeerIdentity};

/// Queued output above which a peer is considered too slow and is disconnected, so one stuck
/// reader cannot make us buffer without bound.
///
/// It is per connection, not per request: senders never wait (a relay must not stall on one
/// peer), so when the peer's daemon stops reading its socket, the whole connection — every
/// request multiplexed on it — is closed once 64 MiB are waiting. That is the right unit,
/// because a daemon that does not drain its socket is stuck as a whole; one slow *request*
/// never gets here, since each daemon reads its connections continuously and bounds per-request
/// buffering itself (the client cuts a stream whose app stops reading at 4 MiB). 64 MiB is far
/// above what a healthy peer lets pile up (a few packets, at most 16 MiB each).
const MAX_PENDING_OUTPUT: usize = 64 << 20;
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
    /// Sends `tcp.queryAnswer`.
    pub fn answer(self, data: &[u8]) -> Result<(), NetError> {
        self.handle
            .with_state(|state| state.session.send_query_answer(self.id, data))
    }

    /// Sends `tcp.queryError`.
    pub fn fail(self, code: i32, message: &str) -> Result<(), NetError> {
        self.handle
            .with_state(|state| state.session.send_query_error(self.id, code, message))
    }
}

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

    /// Runs `f` on the open connection's state (refusing when closed or when the peer lets
    /// output pile up), then wakes the writer.
    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, cocoon_proto::session::SessionError>,
    ) -> Result<T, NetError> {
        let mut state = self.lock();
        if let Some(reason) = &state.close_reason {
            return Err(NetError::Closed(reason.clone()));
        }
        let pending = state.session.pending_output();
        if pending > MAX_PENDING_OUTPUT {
            drop(state);
            self.close("peer does not read its data");
            return Err(NetError::SlowPeer(pending));
        }
        let result = f(&mut state)?;
        drop(state);
        self.0.writer_wake.notify_one();
        Ok(result)
    }

    /// Queues a one-way `tcp.packet`. Never blocks: the writer task sends it.
    pub fn send_packet(&self, data: &[u8]) -> Result<(), NetError> {
        self.with_state(|state| state.session.send_packet(data))
    }

    /// Sends a `tcp.query` and waits for its answer.
    pub async fn query(&self, data: &[u8], timeout: Duration) -> Result<Vec<u8>, NetError> {
        let (sender, receiver) = oneshot::channel();
        let id = self.with_state(|state| {
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

/// Starts the reader and writer tasks for an established TLS stream.
pub(crate) fn spawn_connection<S>(
    stream: S,
    session: Session,
    peer: PeerIdentity,
    remote: SocketAddr,
) -> Connection
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (closed, _) = watch::channel(false);
    let (ready, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
        peer,
        remote,
        started: Instant::now(),
        state: Mutex::new(State {
            session,
            pending_queries: HashMap::new(),
            close_reason: None,
        }),
        writer_wake: Notify::new(),
        closed,
        ready,
        stats: ConnectionStats::default(),
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
        let deadline = handle.lock().session.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => {
                    let wait = at.saturating_sub(handle.now_ms());
                    tokio::time::sleep(Duration::from_millis(wait)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = reader.read(&mut buffer) => {
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
            _ = sleep => {
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
        let write = async {
            writer.write_all(&buffer).await?;
            writer.flush().await
        };
        let abandon = async {
            wait_true(&mut closed).await;
            tokio::time::sleep(CLOSE_FLUSH_GRACE).await
        };
        tokio::select! {
            result = write => result?,
            _ = abandon => return Ok(()),
        }
        handle
            .0
            .stats
            .bytes_sent
            .fetch_add(buffer.len() as u64, Ordering::Relaxed);
        buffer.clear();
    }
}
