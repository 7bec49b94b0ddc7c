//! A sans-io connection state machine for the packet layer: bytes and the current time go in,
//! events, bytes to send and the next deadline come out. The caller owns the socket and the clock.

use std::collections::VecDeque;

use crate::frame::{FrameDecoder, FrameEncoder, FrameError, FRAME_HEADER_LEN, MAX_PACKET_LEN};
use crate::schema::{
    TcpConnect, TcpConnected, TcpPacket, TcpPacketData, TcpPing, TcpPong, TcpQuery, TcpQueryAnswer,
    TcpQueryError,
};
use crate::tl::{
    bytes_encoded_len, peek_constructor, write_bytes, write_i32, write_i64, write_string,
    write_u32, TlBoxed, TlError, TlObject,
};

/// Client idle timeout: the reference client drops a silent connection after 20 s.
pub const CLIENT_IDLE_TIMEOUT_MS: u64 = 20_000;
/// Client ping interval: half the idle timeout, so one lost ping does not drop the connection.
pub const CLIENT_PING_INTERVAL_MS: u64 = 10_000;
/// Server idle timeout: the reference server drops a silent connection after 60 s.
pub const SERVER_IDLE_TIMEOUT_MS: u64 = 60_000;

/// Timers of a [`Session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Close the connection when nothing has been received for this long.
    pub idle_timeout_ms: u64,
    /// Send `tcp.ping` this long after the last ping sent or received; `None` never pings.
    pub ping_interval_ms: Option<u64>,
}

impl SessionConfig {
    /// The reference client's timers: idle 20 s, ping every 10 s.
    pub fn client_default() -> Self {
        Self {
            idle_timeout_ms: CLIENT_IDLE_TIMEOUT_MS,
            ping_interval_ms: Some(CLIENT_PING_INTERVAL_MS),
        }
    }

    /// The reference server's timers: idle 60 s, no pings of its own (it answers the client's).
    pub fn server_default() -> Self {
        Self {
            idle_timeout_ms: SERVER_IDLE_TIMEOUT_MS,
            ping_interval_ms: None,
        }
    }
}

/// Something the peer did that the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The `tcp.connect` / `tcp.connected` handshake finished.
    Connected,
    /// A one-way message (`tcp.packet`).
    Packet(Vec<u8>),
    /// A request to answer with [`Session::send_query_answer`] or [`Session::send_query_error`].
    Query {
        /// Id to answer with.
        id: i64,
        /// Request body.
        data: Vec<u8>,
    },
    /// A successful answer to one of our queries.
    QueryAnswer {
        /// Id returned by [`Session::send_query`].
        id: i64,
        /// Answer body.
        data: Vec<u8>,
    },
    /// A failed answer to one of our queries.
    QueryError {
        /// Id returned by [`Session::send_query`].
        id: i64,
        /// Error code.
        code: i32,
        /// Error text.
        message: String,
    },
}

/// Why a session failed or refused an operation. Errors from [`Session::receive`] and
/// [`Session::handle_timeout`] close the session.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The byte stream broke the framing rules.
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// A packet was not a valid `tcp.Packet`.
    #[error("packet decoding: {0}")]
    Tl(#[from] TlError),
    /// The first packet was not the handshake (`tcp.connect` on a server, `tcp.connected` on a
    /// client).
    #[error("expected a handshake packet, got constructor {found:#010x}")]
    HandshakeExpected {
        /// Constructor id of the packet that came instead (0 if it was too short to have one).
        found: u32,
    },
    /// `tcp.connected` carried a different id than our `tcp.connect`.
    #[error("handshake id {got} does not match {expected}")]
    HandshakeIdMismatch {
        /// The id we sent.
        expected: i64,
        /// The id that came back.
        got: i64,
    },
    /// A handshake packet arrived after the handshake.
    #[error("handshake packet after the handshake")]
    UnexpectedHandshake,
    /// A server cannot send before the client's `tcp.connect` arrived.
    #[error("session is not connected yet")]
    NotReady,
    /// Nothing was received within the idle timeout.
    #[error("idle timeout")]
    IdleTimeout,
    /// The session has failed or been closed.
    #[error("session is closed")]
    Closed,
    /// The packet would exceed the 16 MiB limit.
    #[error("packet of {0} bytes exceeds the 16 MiB limit")]
    PacketTooLarge(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHandshake,
    Ready,
    Closed,
}

/// One side of a packet-layer connection, without I/O.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    is_client: bool,
    phase: Phase,
    connect_id: i64,
    encoder: FrameEncoder,
    decoder: FrameDecoder,
    output: Vec<u8>,
    events: VecDeque<SessionEvent>,
    next_query_id: i64,
    next_ping_id: i64,
    last_received_ms: u64,
    last_ping_ms: u64,
}

impl Session {
    fn new(config: SessionConfig, now_ms: u64, is_client: bool, connect_id: i64) -> Self {
        Self {
            config,
            is_client,
            phase: Phase::AwaitingHandshake,
            connect_id,
            encoder: FrameEncoder::new(),
            decoder: FrameDecoder::new(),
            output: Vec::new(),
            events: VecDeque::new(),
            next_query_id: 1,
            next_ping_id: 1,
            last_received_ms: now_ms,
            last_ping_ms: now_ms,
        }
    }

    /// The dialling side. `tcp.connect` is queued at once; packets and queries may be queued
    /// before [`SessionEvent::Connected`] and go out right behind it.
    pub fn client(config: SessionConfig, now_ms: u64, connect_id: i64) -> Session {
        let mut session = Self::new(config, now_ms, true, connect_id);
        session.queue_fixed(TcpConnect { id: connect_id });
        session
    }

    /// The accepting side: waits for `tcp.connect` and answers `tcp.connected` with its id.
    pub fn server(config: SessionConfig, now_ms: u64) -> Session {
        Self::new(config, now_ms, false, 0)
    }

    /// Whether the handshake has finished and the session is not closed.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Whether the session has failed or been closed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Closes the session; queued output stays available, everything else is refused.
    pub fn close(&mut self) {
        self.phase = Phase::Closed;
    }

    /// Feeds bytes received from the peer. Answers pings, completes the handshake and queues
    /// events. Any error closes the session.
    pub fn receive(&mut self, now_ms: u64, data: &[u8]) -> Result<(), SessionError> {
        if self.phase == Phase::Closed {
            return Err(SessionError::Closed);
        }
        if !data.is_empty() {
            self.last_received_ms = self.last_received_ms.max(now_ms);
        }
        self.decoder.push(data);
        loop {
            let payload = match self.decoder.next_frame() {
                Ok(Some(payload)) => payload,
                Ok(None) => return Ok(()),
                Err(error) => return Err(self.fail(error.into())),
            };
            if let Err(error) = self.handle_payload(now_ms, &payload) {
                return Err(self.fail(error));
            }
        }
    }

    fn fail(&mut self, error: SessionError) -> SessionError {
        self.phase = Phase::Closed;
        error
    }

    fn handle_payload(&mut self, now_ms: u64, payload: &[u8]) -> Result<(), SessionError> {
        if self.phase == Phase::AwaitingHandshake {
            return self.handle_handshake(payload);
        }
        match TcpPacket::from_bytes(payload)? {
            TcpPacket::Ping(TcpPing { id }) => {
                self.last_ping_ms = self.last_ping_ms.max(now_ms);
                self.queue_fixed(TcpPong { id });
            }
            TcpPacket::Pong(_) => {}
            TcpPacket::Packet(TcpPacketData { data }) => {
                self.events.push_back(SessionEvent::Packet(data));
            }
            TcpPacket::Query(TcpQuery { id, data }) => {
                self.events.push_back(SessionEvent::Query { id, data });
            }
            TcpPacket::QueryAnswer(TcpQueryAnswer { id, data }) => {
                self.events
                    .push_back(SessionEvent::QueryAnswer { id, data });
            }
            TcpPacket::QueryError(TcpQueryError { id, code, message }) => {
                self.events
                    .push_back(SessionEvent::QueryError { id, code, message });
            }
            TcpPacket::Connect(_) | TcpPacket::Connected(_) => {
                return Err(SessionError::UnexpectedHandshake)
            }
        }
        Ok(())
    }

    fn handle_handshake(&mut self, payload: &[u8]) -> Result<(), SessionError> {
        let found = peek_constructor(payload).unwrap_or(0);
        if self.is_client {
            if found != TcpConnected::CONSTRUCTOR {
                return Err(SessionError::HandshakeExpected { found });
            }
            let TcpConnected { id } = TcpConnected::from_bytes(payload)?;
            if id != self.connect_id {
                return Err(SessionError::HandshakeIdMismatch {
                    expected: self.connect_id,
                    got: id,
                });
            }
        } else {
            if found != TcpConnect::CONSTRUCTOR {
                return Err(SessionError::HandshakeExpected { found });
            }
            let TcpConnect { id } = TcpConnect::from_bytes(payload)?;
            self.connect_id = id;
            self.queue_fixed(TcpConnected { id });
        }
        self.phase = Phase::Ready;
        self.events.push_back(SessionEvent::Connected);
        Ok(())
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    fn check_can_send(&self) -> Result<(), SessionError> {
        match self.phase {
            Phase::Ready => Ok(()),
            Phase::AwaitingHandshake if self.is_client => Ok(()),
            Phase::AwaitingHandshake => Err(SessionError::NotReady),
            Phase::Closed => Err(SessionError::Closed),
        }
    }

    /// Queues a small fixed-size control packet. These are far below the size limits, so
    /// framing cannot fail.
    fn queue_fixed<T: TlObject>(&mut self, packet: T) {
        let _cannot_fail = self
            .encoder
            .encode_with(&mut self.output, |out| packet.write_boxed(out));
    }

    /// Frames a packet of known payload size written by `write`, checking the size first so that
    /// an oversized packet is refused before anything is written.
    fn queue_packet(
        &mut self,
        payload_len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), SessionError> {
        if payload_len > MAX_PACKET_LEN {
            return Err(SessionError::PacketTooLarge(payload_len));
        }
        self.output.reserve(FRAME_HEADER_LEN + payload_len);
        self.encoder.encode_with(&mut self.output, write)?;
        Ok(())
    }

    /// Sends a one-way `tcp.packet`.
    pub fn send_packet(&mut self, data: &[u8]) -> Result<(), SessionError> {
        self.check_can_send()?;
        self.queue_packet(4 + bytes_encoded_len(data.len()), |out| {
            write_u32(out, TcpPacketData::CONSTRUCTOR);
            write_bytes(out, data);
        })
    }

    /// Sends a `tcp.query` and returns its id (sequential from 1).
    pub fn send_query(&mut self, data: &[u8]) -> Result<i64, SessionError> {
        self.check_can_send()?;
        let id = self.next_query_id;
        self.queue_packet(12 + bytes_encoded_len(data.len()), |out| {
            write_u32(out, TcpQuery::CONSTRUCTOR);
            write_i64(out, id);
            write_bytes(out, data);
        })?;
        self.next_query_id = self.next_query_id.wrapping_add(1);
        Ok(id)
    }

    /// Answers a [`SessionEvent::Query`] successfully.
    pub fn send_query_answer(&mut self, id: i64, data: &[u8]) -> Result<(), SessionError> {
        self.check_can_send()?;
        self.queue_packet(12 + bytes_encoded_len(data.len()), |out| {
            write_u32(out, TcpQueryAnswer::CONSTRUCTOR);
            write_i64(out, id);
            write_bytes(out, data);
        })
    }

    /// Answers a [`SessionEvent::Query`] with an error.
    pub fn send_query_error(
        &mut self,
        id: i64,
        code: i32,
        message: &str,
    ) -> Result<(), SessionError> {
        self.check_can_send()?;
        self.queue_packet(16 + bytes_encoded_len(message.len()), |out| {
            write_u32(out, TcpQueryError::CONSTRUCTOR);
            write_i64(out, id);
            write_i32(out, code);
            write_string(out, message);
        })
    }

    /// Bytes queued for the peer.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// Appends all queued bytes to `out` (by swapping buffers when `out` is empty).
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.output);
        } else {
            out.extend_from_slice(&self.output);
            self.output.clear();
        }
    }

    fn idle_deadline(&self) -> u64 {
        self.last_received_ms
            .saturating_add(self.config.idle_timeout_ms)
    }

    fn ping_deadline(&self) -> Option<u64> {
        if self.phase != Phase::Ready {
            return None;
        }
        let interval = self.config.ping_interval_ms?;
        Some(self.last_ping_ms.saturating_add(interval))
    }

    /// Runs the timers: fails with [`SessionError::IdleTimeout`] (closing the session) when
    /// nothing was received for the idle timeout, and queues a `tcp.ping` when one is due.
    pub fn handle_timeout(&mut self, now_ms: u64) -> Result<(), SessionError> {
        if self.phase == Phase::Closed {
            return Err(SessionError::Closed);
        }
        if now_ms >= self.idle_deadline() {
            return Err(self.fail(SessionError::IdleTimeout));
        }
        if self
            .ping_deadline()
            .is_some_and(|deadline| now_ms >= deadline)
        {
            let id = self.next_ping_id;
            self.next_ping_id = self.next_ping_id.wrapping_add(1);
            self.last_ping_ms = now_ms;
            self.queue_fixed(TcpPing { id });
        }
        Ok(())
    }

    /// When [`Session::handle_timeout`] should next be called; `None` once closed.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.phase == Phase::Closed {
            return None;
        }
        let idle = self.idle_deadline();
        Some(match self.ping_deadline() {
            Some(ping) => ping.min(idle),
            None => idle,
        })
    }
}
