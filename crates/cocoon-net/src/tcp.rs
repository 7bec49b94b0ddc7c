//! The socket options every daemon applies to every TCP socket it accepts or dials.
//!
//! `TCP_NODELAY` on all of them: every hop writes small pieces (an SSE event, a frame, the
//! last chunk of a chunked body) and expects them to leave at once. With Nagle's algorithm on,
//! a small write that follows an unacknowledged one waits for that ACK, and the peer's delayed
//! ACK holds it for ~40 ms: on a reused keep-alive connection every answer's last piece paid
//! that (the relay regressed from under 1 ms to +44 ms per request that way). A fresh
//! connection hides it (quick-ACK mode at start), which is why it went unnoticed.
//!
//! `tests/nodelay.rs` in `cocoon-testkit` checks every socket of a running network.

use tokio::net::TcpStream;

/// Applies the daemons' socket options to an accepted or dialled socket. A failure is logged,
/// not fatal: the socket still works, only slower.
pub fn tune(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
}

/// Dials `address` (anything `TcpStream::connect` takes) and tunes the socket.
pub async fn connect<A: tokio::net::ToSocketAddrs>(address: A) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(address).await?;
    tune(&stream);
    Ok(stream)
}
