//! Sealed requests from the client (issue 14): the workers of a model are asked of the proxy
//! with their certificates, each certificate is verified here with the client's own worker
//! policy (the same DCAP checks as for proxies), and the request is sealed to the HPKE key the
//! verified claims carry. The proxy routes it by its clear fields and relays the answer as
//! sealed records, which only this client can open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use cocoon_attest::receipt::{request_hash, ChargeStatement, Expected, Receipt, ReceiptError};
use cocoon_attest::sealed::{
    request_plaintext, seal_request, AnswerOpener, Padding, RequestContext,
};
use cocoon_net::{ConnectionHandle, PeerPolicy};
use cocoon_proto::*;
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

/// Whether requests are sealed to the worker (`e2e` in the client's config).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum E2e {
    /// Every request is sealed; with no verified worker that takes sealed requests, it fails
    /// with 503.
    Required,
    /// Sealed when a verified worker takes sealed requests, in the clear otherwise (also for
    /// `n` > 1, which a sealed request cannot ask). The default.
    #[default]
    Preferred,
    /// Never sealed: the proxy reads requests and answers (inside its TEE), as in the reference.
    Off,
}

/// How long a proxy's list of sealing workers for a model is used before it is asked again.
const LIST_TTL: Duration = Duration::from_secs(10);
/// How long the proxy may take to list them.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// A worker whose certificate this client verified, and the key to seal to.
#[derive(Clone, Debug)]
pub(crate) struct SealingWorker {
    /// Its certificate key: the proxy routes by it.
    pub worker_key: [u8; 32],
    /// The HPKE key its attested claims carry.
    pub sealing_key: [u8; 32],
    pub coefficient: i32,
    /// The certificate verified: a receipt signed under it is not parsed again.
    pub certificate: cocoon_net::PeerCertificate,
}

/// Per (proxy connection, model): when listed, the generation of the root's worker images it
/// was checked against, and the workers that passed the policy.
type Lists = HashMap<(u64, String), (Instant, u64, Arc<Vec<SealingWorker>>)>;

/// A request sealed for one worker, and how to open its answer.
pub(crate) struct Sealed {
    pub query: ClientRunSealedQuery,
    pub opener: AnswerOpener,
    /// The HPKE key it is sealed to.
    pub sealing_key: [u8; 32],
    /// The certificate of the worker it is sealed to, as verified.
    pub worker_certificate: cocoon_net::PeerCertificate,
}

impl Sealed {
    /// Splits into the packet to send and the reader of its answer; `proxy` is the connection
    /// it goes to (its certificate's key signs the proxy's charge).
    pub fn into_parts(self, proxy: &ConnectionHandle) -> (Vec<u8>, SealedAnswer) {
        let answer = SealedAnswer {
            worker_key: self.query.worker_key,
            sealing_key: self.sealing_key,
            request_id: self.query.request_id,
            request_hash: request_hash(&self.query.sealed),
            model: self.query.model_name.clone(),
            opener: self.opener,
            worker_certificate: self.worker_certificate,
            proxy_certificate: proxy.peer().certificate.clone(),
            proxy_key: proxy.peer().public_key,
        };
        (self.query.to_bytes(), answer)
    }
}

/// A sealed request's answer as it arrives: its opener, and what the worker's receipt and the
/// proxy's charge must say.
pub(crate) struct SealedAnswer {
    pub opener: AnswerOpener,
    worker_key: [u8; 32],
    sealing_key: [u8; 32],
    request_id: [u8; 32],
    request_hash: [u8; 32],
    model: String,
    /// The certificate of the worker it is sealed to, as verified.
    worker_certificate: cocoon_net::PeerCertificate,
    /// The certificate the proxy presented on this connection, and its key.
    proxy_certificate: cocoon_net::PeerCertificate,
    proxy_key: [u8; 32],
}

/// How a sealed answer's receipt and charge checked out, and their base64 for the app.
pub(crate) struct ReceiptCheck {
    /// `Ok`: both verify and the charge is covered; `Err(None)`: no receipt came.
    pub outcome: Result<(), Option<ReceiptError>>,
    /// The worker's receipt, when it parsed (kept as evidence even when refused).
    pub receipt: Option<String>,
    /// The proxy's signed charge, when it parsed.
    pub charge: Option<String>,
}

impl ReceiptCheck {
    /// `X-Cocoon-Receipt-Check`'s value.
    pub fn verdict(&self) -> &'static str {
        match &self.outcome {
            Ok(()) => "ok",
            Err(Some(error)) => error.kind(),
            Err(None) => "missing",
        }
    }
}

impl SealedAnswer {
    /// Checks the receipt in the answer's final info against this request, its opened answer
    /// (call once the answer is done) and what the proxy charged, and the proxy's signed charge
    /// against the receipt and the connection's proxy (or, after the proxy renewed its
    /// certificate, against `sealer`'s proxy policy).
    pub fn check_receipt(&self, info: &ClientQueryFinalInfo, sealer: &Sealer) -> ReceiptCheck {
        let mut check = ReceiptCheck {
            outcome: Err(None),
            receipt: None,
            charge: None,
        };
        let Some(bytes) = &info.receipt else {
            return check;
        };
        let receipt = match Receipt::from_bytes(bytes) {
            Ok(receipt) => receipt,
            Err(error) => {
                check.outcome = Err(Some(error));
                return check;
            }
        };
        check.receipt = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        let told = u64::try_from(info.tokens_used.total_tokens_used).unwrap_or(u64::MAX);
        let expected = Expected {
            worker_key: self.worker_key,
            worker_certificate: Some(self.worker_certificate.der()),
            sealing_key: self.sealing_key,
            client_request_id: self.request_id,
            request_hash: self.request_hash,
            answer_hash: self.opener.answer_hash(),
            model: &self.model,
            billed_total: told,
        };
        let charge = info
            .charge
            .as_deref()
            .map(|bytes| ChargeStatement::from_bytes(bytes).map(|charge| (charge, bytes)))
            .transpose();
        check.outcome = receipt
            .check_for(&expected)
            .and(charge)
            .and_then(|charge| {
                let (charge, bytes) = charge.ok_or(ReceiptError::NoCharge)?;
                check.charge = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                charge.check_against(
                    &receipt,
                    told,
                    Some((self.proxy_certificate.der(), self.proxy_key)),
                )?;
                sealer.check_proxy_signer(
                    &charge.certificate,
                    &self.proxy_certificate,
                    charge.signed_at(),
                )
            })
            .map_err(Some);
        check
    }
}

/// The client's side of sealing: its worker policy and what proxies listed lately.
pub(crate) struct Sealer {
    pub mode: E2e,
    policy: Arc<dyn PeerPolicy>,
    /// How sealed requests are padded (`request_padding`).
    padding: Padding,
    /// The root's worker images, when the policy follows them: a list checked before they
    /// changed is checked again.
    worker_images: Option<cocoon_attest::LiveImageHashes>,
    /// The client's proxy policy, for the certificate of a charge signed after the proxy
    /// renewed its certificate (the connection still shows the old one).
    proxy_policy: Option<Arc<dyn PeerPolicy>>,
    /// SHA-256 of proxy certificates the proxy policy accepted for signing charges (bounded).
    charge_signers: Mutex<std::collections::HashSet<[u8; 32]>>,
    /// Per (proxy connection, model): when listed, and the workers that passed the policy.
    lists: Mutex<Lists>,
    /// Per (proxy connection, model): why the policy refused a worker of the latest list, if
    /// it refused one (an app that gets no sealed request learns why).
    refusals: Mutex<HashMap<(u64, String), String>>,
}

impl Sealer {
    pub fn new(mode: E2e, policy: Arc<dyn PeerPolicy>, padding: Padding) -> Sealer {
        Sealer {
            mode,
            policy,
            padding,
            worker_images: None,
            proxy_policy: None,
            charge_signers: Mutex::new(std::collections::HashSet::new()),
            lists: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
        }
    }

    /// This sealer, whose policy takes its worker images from `images` (the root's, followed).
    pub fn following(mut self, images: Option<cocoon_attest::LiveImageHashes>) -> Sealer {
        self.worker_images = images;
        self
    }

    /// This sealer, checking charges signed under renewed proxy certificates with `policy`.
    pub fn with_proxy_policy(mut self, policy: Arc<dyn PeerPolicy>) -> Sealer {
        self.proxy_policy = Some(policy);
        self
    }

    /// Whether `signer` (a charge's certificate) is this connection's proxy: the certificate
    /// it presented, or one the proxy policy accepts (a renewal; remembered once accepted).
    fn check_proxy_signer(
        &self,
        signer: &[u8],
        connection: &cocoon_net::PeerCertificate,
        at: SystemTime,
    ) -> Result<(), ReceiptError> {
        if signer == connection.der() {
            return Ok(());
        }
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(signer).into();
        let mut known = self
            .charge_signers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if known.contains(&digest) {
            return Ok(());
        }
        let policy = self
            .proxy_policy
            .as_ref()
            .ok_or_else(|| ReceiptError::ChargeSigner("no proxy policy to check it with".into()))?;
        policy
            .verify_peer(signer, at)
            .map_err(|e| ReceiptError::ChargeSigner(e.to_string()))?;
        if known.len() >= 64 {
            known.clear();
        }
        known.insert(digest);
        Ok(())
    }

    fn images_generation(&self) -> u64 {
        self.worker_images
            .as_ref()
            .map_or(0, cocoon_attest::LiveImageHashes::generation)
    }

    /// The workers of `model` behind `proxy` whose certificates pass the worker policy and
    /// carry a sealing key (asked of the proxy at most every [`LIST_TTL`]). A proxy that does
    /// not know the query (the reference's) lists none.
    pub async fn workers(&self, proxy: &ConnectionHandle, model: &str) -> Arc<Vec<SealingWorker>> {
        let key = (proxy.id(), model.to_string());
        let generation = self.images_generation();
        if let Some((at, checked, list)) = self.lock().get(&key) {
            if at.elapsed() < LIST_TTL && *checked == generation {
                return list.clone();
            }
        }
        let query = ClientGetSealingWorkers {
            model_name: model.to_string(),
        }
        .to_bytes();
        let listed = match proxy.query(&query, LIST_TIMEOUT).await {
            Ok(answer) => ClientSealingWorkers::from_bytes(&answer).map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        let (list, refusal) = match listed {
            Ok(listed) => self.verify(listed, model),
            Err(error) => {
                debug!(proxy = proxy.id(), %error, "the proxy lists no workers for sealed requests");
                (Vec::new(), None)
            }
        };
        {
            let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
            if refusals.len() > 256 {
                refusals.clear();
            }
            match refusal {
                Some(refusal) => refusals.insert(key.clone(), refusal),
                None => refusals.remove(&key),
            };
        }
        let list = Arc::new(list);
        let mut lists = self.lock();
        // Lists of closed connections go when the map would grow past a few hundred.
        if lists.len() > 256 {
            lists.retain(|_, (at, _, _)| at.elapsed() < LIST_TTL);
        }
        lists.insert(key, (Instant::now(), generation, list.clone()));
        list
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why this client refused a worker that `proxy` listed for `model` lately, as a clause
    /// for an error message; empty when it refused none.
    pub fn refusal(&self, proxy: u64, model: &str) -> String {
        self.refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(proxy, model.to_string()))
            .map(|why| format!(" (the proxy listed a worker whose certificate failed it: {why})"))
            .unwrap_or_default()
    }

    /// The listed workers whose certificates pass the policy and carry a sealing key, and
    /// whose claims, when they name a model, name `model`; and why the policy refused the first
    /// one it refused.
    fn verify(
        &self,
        listed: ClientSealingWorkers,
        model: &str,
    ) -> (Vec<SealingWorker>, Option<String>) {
        let now = SystemTime::now();
        let mut refusal = None;
        let verified = listed
            .workers
            .into_iter()
            .take(32)
            .filter_map(|worker| {
                let identity = match self.policy.verify_peer(&worker.certificate, now) {
                    Ok(identity) => identity,
                    Err(error) => {
                        info!(%error, "a worker the proxy listed for sealed requests failed this client's worker policy; not sealing to it");
                        refusal.get_or_insert_with(|| error.to_string());
                        return None;
                    }
                };
                // The policy checked the quote over these claims, the model hash included: a
                // worker attested for another model is not sealed to.
                if let Err(why) = cocoon_attest::check_claimed_model(&worker.certificate, now, model) {
                    info!(model, %why, "a worker the proxy listed for sealed requests is attested for another model; not sealing to it");
                    refusal.get_or_insert_with(|| why.to_string());
                    return None;
                }
                // The policy checked the quote over these claims, the sealing key included.
                let sealing_key = cocoon_attest::sealing_key_of(&worker.certificate, now)?;
                Some(SealingWorker {
                    worker_key: identity.public_key,
                    sealing_key,
                    coefficient: worker.coefficient,
                    certificate: cocoon_net::PeerCertificate::new(&worker.certificate),
                })
            })
            .collect();
        (verified, refusal)
    }

    /// Drops a worker that failed a sealed request from the proxy's cached list, so the next
    /// requests seal to the others until the list is asked for again.
    pub fn forget(&self, proxy: u64, model: &str, worker_key: &[u8; 32]) {
        if let Some((_, _, list)) = self.lock().get_mut(&(proxy, model.to_string())) {
            *list = Arc::new(
                list.iter()
                    .filter(|w| w.worker_key != *worker_key)
                    .cloned()
                    .collect(),
            );
        }
    }

    /// Seals `query` (its `http.request`) for one of `workers` that asks no more than the
    /// request's coefficient and is not in `excluded`, chosen at random so sealed requests
    /// spread over the workers (the proxy cannot move them); `None` when none qualifies.
    pub fn seal(
        &self,
        workers: &[SealingWorker],
        query: &ClientRunQueryEx,
        endpoint: &str,
        excluded: &[[u8; 32]],
    ) -> Option<Result<Sealed, String>> {
        let eligible: Vec<&SealingWorker> = workers
            .iter()
            .filter(|w| w.coefficient <= query.max_coefficient && !excluded.contains(&w.worker_key))
            .collect();
        let pick = rand::Rng::gen_range(&mut rand::thread_rng(), 0..eligible.len().max(1));
        let worker = *eligible.get(pick)?;
        let context = RequestContext {
            model: &query.model_name,
            request_id: query.request_id,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let plaintext = request_plaintext(now, &query.query, self.padding);
        Some(
            seal_request(&worker.sealing_key, &context, &plaintext)
                .map(|(sealed, opener)| Sealed {
                    query: ClientRunSealedQuery {
                        model_name: query.model_name.clone(),
                        endpoint: endpoint.to_string(),
                        worker_key: worker.worker_key,
                        sealed,
                        prompt_estimate: i64::try_from(cocoon_proto::estimate::prompt_estimate(
                            HttpRequest::from_bytes(&query.query)
                                .map(|r| r.payload)
                                .unwrap_or_default()
                                .as_slice(),
                        ))
                        .unwrap_or(i64::MAX),
                        max_coefficient: query.max_coefficient,
                        max_tokens: query.max_tokens,
                        timeout: query.timeout,
                        request_id: query.request_id,
                        min_config_version: query.min_config_version,
                        enable_debug: query.enable_debug,
                    },
                    opener,
                    sealing_key: worker.sealing_key,
                    worker_certificate: worker.certificate.clone(),
                })
                .map_err(|e| e.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cocoon_attest::{ClaimsExtras, PeerPolicyConfig, PolicyKind, TeeConfig, TeeKind};

    fn worker(model_hash: Option<[u8; 32]>) -> ClientSealingWorker {
        let extras = ClaimsExtras {
            sealing_key: Some([3; 32]),
            model_hash,
            weights_digest: None,
        };
        let identity = TeeConfig::of(TeeKind::DangerFake)
            .identity_with_extras("cocoon-worker", &extras)
            .unwrap();
        ClientSealingWorker {
            certificate: identity.tls.cert_der,
            coefficient: 1000,
        }
    }

    #[test]
    fn a_worker_attested_for_another_model_is_not_sealed_to() {
        let policy = PeerPolicyConfig::of(PolicyKind::DangerFakeTdx)
            .build()
            .unwrap()
            .policy;
        let sealer = Sealer::new(E2e::Preferred, policy, Padding::requests());
        let listed = ClientSealingWorkers {
            workers: vec![
                worker(Some(cocoon_attest::model_hash("other/model"))),
                worker(Some(cocoon_attest::model_hash("the/model"))),
                worker(None),
            ],
        };
        let (verified, refusal) = sealer.verify(listed.clone(), "the/model");
        // The reason the app gets when no worker is left to seal to.
        assert!(
            refusal.as_deref().is_some_and(|why| why.contains("model")),
            "{refusal:?}"
        );
        let keys: Vec<[u8; 32]> = verified.iter().map(|w| w.worker_key).collect();
        let key_of = |index: usize| {
            cocoon_attest::claims_of(&listed.workers[index].certificate, SystemTime::now())
                .unwrap()
                .public_key
        };
        assert_eq!(keys, vec![key_of(1), key_of(2)]);
        assert!(verified.iter().all(|w| w.sealing_key == [3; 32]));
        assert_eq!(sealer.verify(listed, "other/model").0.len(), 2);
    }
}
