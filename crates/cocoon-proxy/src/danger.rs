//! A proxy that misbehaves on purpose, for tests only: [`DangerTamper`] sees (and may change,
//! drop, repeat or hold back) what the proxy sends about sealed requests, so tests can perform
//! a malicious proxy's attacks on the wire and check that the client and the worker refuse
//! them, each with its own error.
//!
//! Nothing in a config can install it: only [`start_tampering`] does, and only the test
//! devnet calls that. A proxy started by [`crate::start`] has none, and the request path pays
//! one `Option` check for the hook.

use std::sync::Arc;

use cocoon_net::Shutdown;
use cocoon_proto::*;

use crate::core::Outgoing;
use crate::{ProxyConfig, ProxyError, RunningProxy};

/// What a tampering proxy does to the messages of sealed requests. Every method's default
/// leaves the message as it is, so a test overrides only the attack it performs.
///
/// **Tests only.** A proxy in production never has one; see the module's documentation.
pub trait DangerTamper: Send + Sync + 'static {
    /// The `client.sealingWorkers` answer for `model`, before it goes to the client (swap or
    /// forge certificates).
    fn sealing_workers(&self, _model: &str, _listed: &mut ClientSealingWorkers) {}

    /// A client's `client.runSealedQuery` as it arrives, before the proxy routes and bills it
    /// by its clear fields (name another worker than the one it is sealed to).
    fn client_sealed_query(&self, _query: &mut ClientRunSealedQuery) {}

    /// The `proxy.runSealedQuery` about to go to a worker: what to send instead, in order (the
    /// same query twice is a replay; none drops it).
    fn sealed_to_worker(&self, query: ProxyRunSealedQuery) -> Vec<ProxyRunSealedQuery> {
        vec![query]
    }

    /// An answer message (the head, a part or an error) about to go to a client: what to send
    /// instead, in order. A message held back now may be sent with a later one (reordering).
    /// The proxy's billing has already seen the original.
    fn answer_to_client(&self, answer: ClientQueryAnswer) -> Vec<ClientQueryAnswer> {
        vec![answer]
    }
}

/// A tamper as the proxy holds it.
pub(crate) type Tamper = Arc<dyn DangerTamper>;

/// Starts a proxy as [`crate::start`] does, with `tamper` between it and its peers. **Tests
/// only.**
pub async fn start_tampering(
    config: ProxyConfig,
    shutdown: Shutdown,
    tamper: Arc<dyn DangerTamper>,
) -> Result<RunningProxy, ProxyError> {
    tracing::warn!("this proxy TAMPERS with sealed requests on purpose (a test's danger hook)");
    crate::start_with(config, shutdown, Some(tamper)).await
}

/// What to send once `tamper` has had its way with `outgoing`.
pub(crate) fn tamper_outgoing(tamper: &dyn DangerTamper, outgoing: Vec<Outgoing>) -> Vec<Outgoing> {
    let mut tampered = Vec::with_capacity(outgoing.len());
    for message in outgoing {
        match message {
            Outgoing::ToWorker(handle, ProxyToWorkerMessage::RunSealed(query)) => {
                tampered.extend(tamper.sealed_to_worker(query).into_iter().map(|query| {
                    Outgoing::ToWorker(handle.clone(), ProxyToWorkerMessage::RunSealed(query))
                }));
            }
            Outgoing::ToClient(handle, answer) => {
                tampered.extend(
                    tamper
                        .answer_to_client(answer)
                        .into_iter()
                        .map(|answer| Outgoing::ToClient(handle.clone(), answer)),
                );
            }
            // The last message still waits for its charge; what the tamper sends before it
            // goes at once.
            Outgoing::AfterCharge(handle, answer, wait) => {
                let mut answers = tamper.answer_to_client(answer);
                let Some(last) = answers.pop() else {
                    continue;
                };
                tampered.extend(
                    answers
                        .into_iter()
                        .map(|answer| Outgoing::ToClient(handle.clone(), answer)),
                );
                tampered.push(Outgoing::AfterCharge(handle, last, wait));
            }
            other => tampered.push(other),
        }
    }
    tampered
}
