//! The API's HTTP/1.1 server loop: axum's router on hyper connections that have a header read
//! timeout.
//!
//! `axum::serve` gives hyper no timer, so hyper's header read timeout never fires there and a
//! connection that trickles its headers (slowloris) is held forever. Here every connection gets
//! one: headers (and the start of the next request on a kept-alive connection) must arrive
//! within `header_read_timeout`, or the connection is closed. The body has its own limit in
//! the completion handler.

use std::time::Duration;

use axum::Router;
use cocoon_net::Shutdown;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `shutdown` drains, then lets every open connection finish
/// its request in flight and returns once all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: Shutdown,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.draining() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(
                        stream,
                        app.clone(),
                        header_read_timeout,
                        shutdown.clone(),
                    ));
                }
                Err(error) => {
                    warn!(%error, "API accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            // Reaping finished connections keeps the set from growing.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    header_read_timeout: Duration,
    shutdown: Shutdown,
) {
    cocoon_net::tcp::tune(&stream);
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                debug!(%error, "API connection ended with an error");
            }
            return;
        }
        _ = shutdown.draining() => {}
    }
    // Finish the response in flight, if any, then close instead of keeping alive.
    connection.as_mut().graceful_shutdown();
    if let Err(error) = connection.await {
        debug!(%error, "API connection ended with an error");
    }
}
