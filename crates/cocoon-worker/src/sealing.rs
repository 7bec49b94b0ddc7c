//! Sealed requests on the worker: the HPKE key made at start (its public half goes into the
//! worker's attested claims), opening a `proxy.runSealedQuery`, and holding the opened body to
//! what the proxy reserved for it.
//!
//! A sealed request is refused (with its own message) when it is sealed to another worker's
//! key, when it does not open with this key for the request it came with, when it was sealed
//! outside the freshness window, when its id was opened before (a replay), when its path is not
//! the one the proxy was told in the clear, or when it asks for more than one choice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cocoon_attest::receipt::{request_hash, ReceiptSigner};
use cocoon_attest::sealed::{
    fresh_request, AnswerSealer, RequestContext, WorkerKey, REQUEST_MAX_AGE_SECS,
};
use cocoon_proto::*;
use serde_json::Value;

/// Request ids remembered against replays: enough for a busy worker's window; past it, sealed
/// requests are refused until old ids expire (a flood cannot grow the set).
const MAX_REMEMBERED: usize = 200_000;

/// This worker's sealing key, the requests it opened lately, and the signer of their receipts.
pub(crate) struct Sealing {
    key: WorkerKey,
    seen: Mutex<HashMap<[u8; 32], Instant>>,
    /// The key of the current certificate, which signs receipts (replaced on renewal).
    signer: RwLock<Option<Arc<ReceiptSigner>>>,
}

/// What a sealed request's receipt is made of, besides its answer and usage.
#[derive(Debug)]
pub(crate) struct ReceiptContext {
    pub signer: Arc<ReceiptSigner>,
    pub client_request_id: [u8; 32],
    pub request_hash: [u8; 32],
}

impl Sealing {
    /// A fresh key pair.
    pub fn generate() -> Sealing {
        Sealing {
            key: WorkerKey::generate(),
            seen: Mutex::new(HashMap::new()),
            signer: RwLock::new(None),
        }
    }

    /// Signs receipts with `identity`'s key from now on (at start and after each renewal).
    pub fn use_identity(&self, identity: &cocoon_net::TlsIdentity) {
        match ReceiptSigner::new(identity) {
            Ok(signer) => {
                *self.signer.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(signer))
            }
            // Answers stay sealed; only their receipts are missing, and the client says so.
            Err(error) => {
                tracing::error!(%error, "receipts cannot be signed with this certificate")
            }
        }
    }

    /// The receipt inputs of an opened request.
    fn receipt(&self, query: &ProxyRunSealedQuery) -> Option<ReceiptContext> {
        let signer = self
            .signer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        Some(ReceiptContext {
            signer,
            client_request_id: query.client_request_id,
            request_hash: request_hash(&query.sealed),
        })
    }

    /// The public key the claims carry.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    /// Opens `query` for `model`: the plain query to run and the sealer of its answer.
    pub fn open(
        &self,
        query: &ProxyRunSealedQuery,
        model: &str,
    ) -> Result<(ProxyRunQueryEx, AnswerSealer, Option<ReceiptContext>), String> {
        let context = RequestContext {
            model,
            request_id: query.client_request_id,
        };
        let (plaintext, sealer) = self
            .key
            .open_request(&context, &query.sealed)
            .map_err(|e| e.to_string())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let request = fresh_request(&plaintext, now).map_err(|e| e.to_string())?;
        self.remember(query.client_request_id)?;
        let mut request = HttpRequest::from_bytes(request)
            .map_err(|e| format!("the sealed request is not an http.request: {e}"))?;
        if request.url.split('?').next() != Some(query.endpoint.as_str()) {
            return Err(format!(
                "the sealed request is for {}, not {} as the proxy was told",
                request.url, query.endpoint
            ));
        }
        // The proxy bills a cut answer by the client's declared estimate: it may not be below
        // what the body counts (the clamp at the proxy keeps it from being above its size).
        let counted = cocoon_proto::estimate::prompt_estimate(&request.payload);
        if u64::try_from(query.prompt_estimate).unwrap_or(0) < counted {
            return Err(format!(
                "the sealed request declares a prompt estimate of {} tokens, below its body's {counted}",
                query.prompt_estimate
            ));
        }
        if query.endpoint != "/v1/embeddings" {
            request.payload = hold_to(&request.payload, query.max_tokens)?;
        }
        Ok((
            ProxyRunQueryEx {
                query: request.to_bytes(),
                signed_payment: query.signed_payment.clone(),
                coefficient: query.coefficient,
                timeout: query.timeout,
                request_id: query.request_id,
                enable_debug: query.enable_debug,
            },
            sealer,
            self.receipt(query),
        ))
    }

    /// Refuses an id opened within the window; forgets the ones past it.
    fn remember(&self, id: [u8; 32]) -> Result<(), String> {
        let window = Duration::from_secs(2 * REQUEST_MAX_AGE_SECS);
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, at| now.duration_since(*at) < window);
            if seen.len() >= MAX_REMEMBERED {
                return Err("too many sealed requests lately; try again in a few minutes".into());
            }
        }
        if seen.insert(id, now).is_some() {
            return Err("this sealed request was opened here before (a replay)".into());
        }
        Ok(())
    }
}

/// The body with its completion held to `max_tokens` (what the proxy reserved): both limit
/// fields lowered to it where larger, `max_tokens` set where neither is given. More than one
/// choice is refused: the proxy reserved one.
fn hold_to(body: &[u8], max_tokens: i32) -> Result<Vec<u8>, String> {
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(body) else {
        // The allow-list refuses it with its own message.
        return Ok(body.to_vec());
    };
    if object
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 1)
    {
        return Err("'n' above 1 is not available for sealed requests".into());
    }
    let limit = u64::try_from(max_tokens).unwrap_or(0).max(1);
    let mut given = false;
    for field in ["max_tokens", "max_completion_tokens"] {
        if let Some(value) = object.get_mut(field) {
            given = true;
            if value.as_u64().is_none_or(|v| v > limit) {
                *value = limit.into();
            }
        }
    }
    if !given {
        object.insert("max_tokens".into(), limit.into());
    }
    serde_json::to_vec(&Value::Object(object)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cocoon_attest::sealed::{request_plaintext, seal_request, Padding};

    fn sealed_query(sealing: &Sealing, body: &str, sealed_at: u64) -> ProxyRunSealedQuery {
        let request = HttpRequest {
            method: "POST".into(),
            url: "/v1/chat/completions".into(),
            http_version: "HTTP/1.1".into(),
            headers: vec![],
            payload: body.as_bytes().to_vec(),
        };
        let context = RequestContext {
            model: "m",
            request_id: [4; 32],
        };
        let (sealed, _) = seal_request(
            &sealing.public_key(),
            &context,
            &request_plaintext(sealed_at, &request.to_bytes(), Padding::requests()),
        )
        .unwrap();
        ProxyRunSealedQuery {
            endpoint: "/v1/chat/completions".into(),
            sealed,
            client_request_id: [4; 32],
            prompt_estimate: 100,
            max_tokens: 16,
            signed_payment: SignedPayment::Empty,
            coefficient: 1000,
            timeout: 10.0,
            request_id: [8; 32],
            enable_debug: None,
        }
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn an_opened_request_is_held_to_its_reservation_and_opens_once() {
        let sealing = Sealing::generate();
        let query = sealed_query(&sealing, r#"{"model":"m","max_tokens":500}"#, now());
        let (plain, _, _) = sealing.open(&query, "m").unwrap();
        assert_eq!(plain.request_id, [8; 32]);
        let request = HttpRequest::from_bytes(&plain.query).unwrap();
        let body: Value = serde_json::from_slice(&request.payload).unwrap();
        assert_eq!(body["max_tokens"], 16);
        let replay = sealing.open(&query, "m").unwrap_err();
        assert!(replay.contains("replay"), "{replay}");
    }

    #[test]
    fn each_refusal_says_why() {
        let sealing = Sealing::generate();
        let query = sealed_query(&sealing, r#"{"model":"m"}"#, now());
        let other_model = sealing.open(&query, "other").unwrap_err();
        assert!(other_model.contains("does not open"), "{other_model}");
        let mut moved = query.clone();
        moved.client_request_id = [5; 32];
        let moved = sealing.open(&moved, "m").unwrap_err();
        assert!(moved.contains("does not open"), "{moved}");
        let foreign = sealed_query(&Sealing::generate(), r#"{"model":"m"}"#, now());
        assert!(sealing
            .open(&foreign, "m")
            .unwrap_err()
            .contains("sealed to another worker's key"));
        let stale = sealed_query(&sealing, r#"{"model":"m"}"#, now() - 3600);
        let stale = sealing.open(&stale, "m").unwrap_err();
        assert!(stale.contains("replay, or a clock"), "{stale}");
        // Each of the rest on a worker that has not seen the id yet.
        let fresh = Sealing::generate();
        let mut retargeted = sealed_query(&fresh, r#"{"model":"m"}"#, now());
        retargeted.endpoint = "/v1/embeddings".into();
        let retargeted = fresh.open(&retargeted, "m").unwrap_err();
        assert!(retargeted.contains("not /v1/embeddings"), "{retargeted}");
        let fresh = Sealing::generate();
        let many = sealed_query(&fresh, r#"{"model":"m","n":2}"#, now());
        assert!(fresh.open(&many, "m").unwrap_err().contains("'n' above 1"));
        // A declared prompt estimate below the body's would have the proxy bill a cut answer
        // too little.
        let fresh = Sealing::generate();
        let mut low = sealed_query(
            &fresh,
            r#"{"model":"m","messages":[{"role":"user","content":"a fairly long question, forty-four bytes"}]}"#,
            now(),
        );
        low.prompt_estimate = 3;
        let low = fresh.open(&low, "m").unwrap_err();
        assert!(low.contains("below its body's 16"), "{low}");
    }

    #[test]
    fn bodies_are_held_to_the_reserved_tokens() {
        let held = |body: &str, max| -> Value {
            serde_json::from_slice(&hold_to(body.as_bytes(), max).unwrap()).unwrap()
        };
        assert_eq!(held(r#"{"a":1}"#, 7)["max_tokens"], 7);
        assert_eq!(held(r#"{"max_tokens":3}"#, 7)["max_tokens"], 3);
        let both = held(r#"{"max_tokens":30,"max_completion_tokens":40}"#, 7);
        assert_eq!(
            (
                both["max_tokens"].clone(),
                both["max_completion_tokens"].clone()
            ),
            (7.into(), 7.into())
        );
        assert_eq!(
            held(r#"{"max_completion_tokens":"x"}"#, 7)["max_completion_tokens"],
            7
        );
        assert_eq!(hold_to(b"[1]", 7).unwrap(), b"[1]");
    }
}
