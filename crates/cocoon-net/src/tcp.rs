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

/// Most bytes one socket read takes for a TLS stream: one whole TLS record (16 KiB of
/// plaintext, its header and tag) and then some.
const READ_AHEAD: usize = (16 << 10) + 512;

thread_local! {
    /// Where [`ReadAhead`] reads to, one per runtime thread: no connection holds a read
    /// buffer while it waits.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_AHEAD]);
}

/// A TCP stream under TLS that reads up to a whole record per `recv`. rustls asks for 4 KiB at
/// a time, so a 10 KB answer took three `recv`s on every TLS hop; with this it takes one (the
/// relay benchmark's free chain: 7 % more requests per second at 32 connections, 8 % less CPU
/// per request). What the caller did not take waits in a buffer sized to it, freed once taken,
/// so an idle connection holds no more memory than before.
pub(crate) struct ReadAhead {
    tcp: TcpStream,
    /// Read from the socket, not yet taken; from `taken` on.
    left: Vec<u8>,
    taken: usize,
}

impl ReadAhead {
    pub(crate) fn new(tcp: TcpStream) -> ReadAhead {
        ReadAhead {
            tcp,
            left: Vec::new(),
            taken: 0,
        }
    }
}

impl tokio::io::AsyncRead for ReadAhead {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.taken < this.left.len() {
            let n = out.remaining().min(this.left.len() - this.taken);
            out.put_slice(&this.left[this.taken..this.taken + n]);
            this.taken += n;
            if this.taken == this.left.len() {
                this.left = Vec::new();
                this.taken = 0;
            }
            return Poll::Ready(Ok(()));
        }
        // tokio's own read, which skips the syscall while the socket is known to be drained.
        SCRATCH.with_borrow_mut(|scratch| {
            let mut read = tokio::io::ReadBuf::new(scratch);
            std::task::ready!(std::pin::Pin::new(&mut this.tcp).poll_read(cx, &mut read))?;
            let got = read.filled();
            let given = out.remaining().min(got.len());
            out.put_slice(&got[..given]);
            if given < got.len() {
                this.left = got[given..].to_vec();
                this.taken = 0;
            }
            Poll::Ready(Ok(()))
        })
    }
}

impl tokio::io::AsyncWrite for ReadAhead {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Whatever the sizes written and asked for, the reader gets the same bytes in order,
    /// then the end; writes pass through.
    #[tokio::test]
    async fn read_ahead_gives_every_byte_once_in_order_whatever_the_read_sizes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            // Pieces of many sizes, some above a record, some tiny.
            let mut at = 0;
            for size in [1usize, 4096, 17_000, 3, 40_000, 5000].iter().cycle() {
                if at >= sent.len() {
                    break;
                }
                let end = (at + size).min(sent.len());
                socket.write_all(&sent[at..end]).await.unwrap();
                at = end;
            }
            let mut echo = [0u8; 5];
            socket.read_exact(&mut echo).await.unwrap();
            assert_eq!(&echo, b"hello");
        });
        let mut reader = ReadAhead::new(connect(address).await.unwrap());
        let mut got = Vec::new();
        let mut sizes = [4096usize, 1, 100, 20_000, 7].iter().cycle();
        loop {
            let mut buf = vec![0u8; *sizes.next().unwrap()];
            let n = reader.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            if got.len() == data.len() {
                break;
            }
            assert!(n > 0, "ended early at {}", got.len());
        }
        assert!(got == data, "bytes differ");
        assert!(reader.left.is_empty(), "nothing kept once all was taken");
        reader.write_all(b"hello").await.unwrap();
        writer.await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).await.unwrap(), 0, "the end");
    }
}
