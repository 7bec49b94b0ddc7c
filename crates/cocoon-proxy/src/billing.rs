//! What a request may cost, and what it is billed.
//!
//! Before a request runs the proxy bounds it from its body: the prompt's bytes (a token is at
//! least a byte of text; [`PROMPT_SLACK_TOKENS`] covers what the chat template adds) plus
//! `max_tokens × n` completion tokens, priced with the chosen worker's coefficient and the
//! largest of the root's multipliers. That many adjusted tokens are reserved, and the worker's
//! copy of the request carries the bound (its `max_tokens` is set when absent or larger), so an
//! honest worker always fits. A charge never exceeds the reservation: a report above it is
//! capped, logged and counted against the worker.
//!
//! An answer cut short (a timeout, a client that went away, a worker that broke off) is billed
//! for what was delivered: the worker's own report when it sent one, otherwise the documented
//! estimate of [`Progress::estimate`]: the prompt counted by [`prompt_estimate`] (OpenAI's rule
//! for chat messages: their text at [`BYTES_PER_TOKEN`] bytes a token, 3 tokens per message and 3
//! to prime the reply) and a completion token per SSE event relayed (the servers we forward to
//! send one event per token), or per [`BYTES_PER_TOKEN`] bytes of a non-streamed answer.

use cocoon_proto::usage::adjust_tokens;
use cocoon_proto::{HttpRequest, Multipliers, TlBoxed, TokensUsed};
use memchr::memmem;
use serde_json::Value;

/// Completion tokens reserved when neither the client nor the body says how many it needs; the
/// worker's copy of the request then asks for at most this many.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Tokens allowed beyond the body's size for what the chat template adds (role markers, a
/// default system prompt).
pub const PROMPT_SLACK_TOKENS: u64 = 256;
/// The largest `n` (choices per request) the proxy admits.
pub const MAX_N: u64 = 128;
/// Bytes of text per token in the estimates (OpenAI's rule of thumb for English).
pub use cocoon_proto::estimate::BYTES_PER_TOKEN;

/// A request's bound, read from its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// Bytes of the HTTP body (the prompt and its JSON).
    pub body_bytes: u64,
    /// Completion tokens per choice.
    pub max_tokens: u64,
    /// Choices.
    pub n: u64,
    /// The request re-encoded with `max_tokens` set, when the body lacked it or asked for more
    /// than the bound.
    pub rewritten: Option<Vec<u8>>,
}

impl Bound {
    /// Raw tokens the request may use at most.
    pub fn raw_tokens(&self) -> u64 {
        self.body_bytes
            .saturating_add(PROMPT_SLACK_TOKENS)
            .saturating_add(self.max_tokens.saturating_mul(self.n))
    }

    /// Adjusted tokens to reserve on a worker with `coefficient`.
    pub fn reserve(&self, coefficient: u32, multipliers: &Multipliers) -> u64 {
        adjust_tokens(self.raw_tokens(), coefficient, multipliers.max())
    }
}

/// Why a request was refused before it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

fn count_of(name: &str, value: Option<&Value>) -> Result<Option<u64>, Refused> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| Refused(format!("'{name}' must be a non-negative integer"))),
    }
}

/// The fields of a request body the bound reads; serde skips the rest without building it.
/// `None`: absent; `Some(Value::Null)`: present as `null`.
#[derive(serde::Deserialize)]
struct Counts {
    #[serde(default, deserialize_with = "present")]
    n: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    max_tokens: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    max_completion_tokens: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(field: D) -> Result<Option<Value>, D::Error> {
    serde::Deserialize::deserialize(field).map(Some)
}

/// The counts of a body, and whether its JSON is a plain object that names each at most once
/// (so that setting `max_tokens` needs no re-encoding, see [`insert_max_tokens`]). `None`: not
/// a JSON object at all.
fn read_counts(payload: &[u8]) -> Option<(Counts, bool)> {
    let starts_as_object = payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    if starts_as_object {
        // Fails on a repeated field (a backend may read either copy): the slow path below
        // reads such a body as the backend's JSON parser would, the last copy winning.
        if let Ok(counts) = serde_json::from_slice::<Counts>(payload) {
            return Some((counts, true));
        }
    }
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(payload) else {
        return None;
    };
    let counts = Counts {
        n: body.remove("n"),
        max_tokens: body.remove("max_tokens"),
        max_completion_tokens: body.remove("max_completion_tokens"),
    };
    Some((counts, false))
}

/// `payload`, a JSON object without `max_tokens`, with `"max_tokens":value` as its first
/// member: a splice, not a re-encoding, so the rest of the body reaches the worker as sent.
fn insert_max_tokens(payload: &[u8], value: u64) -> Vec<u8> {
    let open = payload
        .iter()
        .position(|&b| b == b'{')
        .expect("read_counts saw an object");
    let empty = payload[open + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'}');
    let member = format!("\"max_tokens\":{value}{}", if empty { "" } else { "," });
    let mut out = Vec::with_capacity(payload.len() + member.len());
    out.extend_from_slice(&payload[..=open]);
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(&payload[open + 1..]);
    out
}

/// The bound of a sealed request, from its clear fields only: the sealed bytes less
/// [`SEALED_OVERHEAD`] stand for the body, `client_max_tokens` (0 or less: [`DEFAULT_MAX_TOKENS`]) for
/// its completion, one choice (the worker refuses `n` > 1 in a sealed body and holds the body to
/// the tokens reserved). Embeddings reserve their input only, as in the clear.
pub fn sealed_bound(endpoint: &str, sealed_bytes: usize, client_max_tokens: i32) -> Bound {
    let max_tokens = if endpoint.split('?').next() == Some("/v1/embeddings") {
        0
    } else {
        u64::try_from(client_max_tokens)
            .ok()
            .filter(|&m| m > 0)
            .unwrap_or(DEFAULT_MAX_TOKENS)
    };
    Bound {
        body_bytes: (sealed_bytes as u64).saturating_sub(SEALED_OVERHEAD),
        max_tokens,
        n: 1,
        rewritten: None,
    }
}

/// Bytes of a sealed request that are not the JSON body: [`SEALING_OVERHEAD`], and the
/// `http.request` around the body (constructor, `POST`, a `/v1/chat/completions` path,
/// `HTTP/1.1`, one Content-Type header, the body's length: 92).
pub const SEALED_OVERHEAD: u64 = SEALING_OVERHEAD + 92;

/// Bytes every sealed request carries besides its `http.request`: the sealing's time (8), the
/// request's length (4), and the key id, encapsulated key and tag of the sealing
/// ([`cocoon_attest::sealed::REQUEST_OVERHEAD`]). (Its padding counts as body: the proxy cannot
/// tell it apart, so a padded request reserves up to its bucket.)
pub const SEALING_OVERHEAD: u64 = 8 + 4 + cocoon_attest::sealed::REQUEST_OVERHEAD as u64;

/// The most a sealed request's declared prompt estimate may be: its `http.request`'s bytes (more
/// than its body's, whatever its path) at [`BYTES_PER_TOKEN`] a token.
pub fn sealed_prompt_ceiling(sealed_bytes: usize) -> u64 {
    (sealed_bytes as u64)
        .saturating_sub(SEALING_OVERHEAD)
        .div_ceil(BYTES_PER_TOKEN)
}

/// Reads the bound of a `client.runQueryEx` query (a boxed `http.request`), where the client
/// said `client_max_tokens` (0 or less: not said).
///
/// A body that is not a JSON object (or a query that is not an `http.request`) is bounded by
/// its size and [`DEFAULT_MAX_TOKENS`] and passed on unchanged: the worker refuses it.
pub fn bound(query: &[u8], client_max_tokens: i32) -> Result<Bound, Refused> {
    let client_max = u64::try_from(client_max_tokens).ok().filter(|&m| m > 0);
    let unread = |body_bytes: u64| Bound {
        body_bytes,
        max_tokens: client_max.unwrap_or(DEFAULT_MAX_TOKENS),
        n: 1,
        rewritten: None,
    };
    let Ok(mut request) = HttpRequest::from_bytes(query) else {
        return Ok(unread(query.len() as u64));
    };
    let body_bytes = request.payload.len() as u64;
    if request.url.split('?').next() == Some("/v1/embeddings") {
        // No completion: the input is all it uses, and its tokens are fewer than its bytes.
        return Ok(Bound {
            body_bytes,
            max_tokens: 0,
            n: 1,
            rewritten: None,
        });
    }
    let Some((counts, plain)) = read_counts(&request.payload) else {
        return Ok(unread(body_bytes));
    };
    let n = count_of("n", counts.n.as_ref())?.unwrap_or(1);
    if n == 0 || n > MAX_N {
        return Err(Refused(format!("'n' must be between 1 and {MAX_N}")));
    }
    let asked_tokens = count_of("max_tokens", counts.max_tokens.as_ref())?;
    let asked_completion = count_of(
        "max_completion_tokens",
        counts.max_completion_tokens.as_ref(),
    )?;
    let asked = [asked_tokens, asked_completion, client_max]
        .into_iter()
        .flatten()
        .min();
    let max_tokens = asked.unwrap_or(DEFAULT_MAX_TOKENS);
    // The worker's copy must not ask for more than was reserved: set the fields that are
    // missing or larger (both, when the body names both).
    let too_large = |present: Option<u64>| present.is_some_and(|v| v > max_tokens);
    let neither = asked_tokens.is_none() && asked_completion.is_none();
    let payload = if plain && counts.max_tokens.is_none() && asked_completion.is_none() {
        // The common case, no `max_tokens` in the body at all: one splice.
        Some(insert_max_tokens(&request.payload, max_tokens))
    } else if neither || too_large(asked_tokens) || too_large(asked_completion) {
        let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&request.payload) else {
            return Ok(unread(body_bytes));
        };
        let mut set = |name: &str, present: Option<u64>| {
            if neither && name == "max_tokens" || too_large(present) {
                body.insert(name.into(), max_tokens.into());
            }
        };
        set("max_tokens", asked_tokens);
        set("max_completion_tokens", asked_completion);
        Some(serde_json::to_vec(&Value::Object(body)).unwrap_or_default())
    } else {
        None
    };
    let rewritten = payload.map(|payload| {
        request.payload = payload;
        request.to_bytes()
    });
    Ok(Bound {
        body_bytes,
        max_tokens,
        n,
        rewritten,
    })
}

/// What reached the client of a running request, for billing an answer cut short.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Answer bytes relayed.
    pub bytes: u64,
    /// SSE `data:` events relayed.
    pub events: u64,
}

static SSE_DATA: std::sync::LazyLock<memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memmem::Finder::new(b"data:"));

impl Progress {
    /// Counts a relayed piece of the answer.
    pub fn relayed(&mut self, piece: &[u8]) {
        self.bytes = self.bytes.saturating_add(piece.len() as u64);
        self.events = self
            .events
            .saturating_add(SSE_DATA.find_iter(piece).count() as u64);
    }

    /// Counts a relayed piece of a sealed answer: the proxy cannot see its events, so each
    /// non-empty piece (one worker part, at least one token in practice) counts as one.
    pub fn relayed_sealed(&mut self, piece: &[u8]) {
        self.bytes = self.bytes.saturating_add(piece.len() as u64);
        if !piece.is_empty() {
            self.events = self.events.saturating_add(1);
        }
    }

    /// The documented estimate of what a cut answer used (raw counts): `prompt` tokens (see
    /// [`prompt_estimate`]), and a completion token per SSE event, or per [`BYTES_PER_TOKEN`]
    /// bytes of an answer that is not SSE.
    pub fn estimate(&self, prompt: u64) -> TokensUsed {
        let completion = if self.events > 0 {
            self.events
        } else {
            self.bytes.div_ceil(BYTES_PER_TOKEN)
        };
        TokensUsed::from_counts(prompt, 0, completion, 0)
    }
}

/// The prompt tokens of a query (a boxed `http.request`) when the worker never said: its body
/// by [`cocoon_proto::estimate::prompt_estimate`]; a query that is not an `http.request`, its
/// whole size at [`BYTES_PER_TOKEN`] bytes a token.
pub fn prompt_estimate(query: &[u8]) -> u64 {
    match HttpRequest::from_bytes(query) {
        Ok(request) => cocoon_proto::estimate::prompt_estimate(&request.payload),
        Err(_) => (query.len() as u64).div_ceil(BYTES_PER_TOKEN),
    }
}

/// What a request is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Billed {
    /// Adjusted tokens charged.
    pub tokens: u64,
    /// The report was above the reservation and was cut to it.
    pub capped: bool,
}

/// Bills a worker's report against a reservation of `reserved` adjusted tokens.
pub fn bill_report(report: &TokensUsed, reserved: u64) -> Billed {
    let reported = report.billable();
    Billed {
        tokens: reported.min(reserved),
        capped: reported > reserved,
    }
}

/// What the client is told it used: the report itself, or only the billed total when the
/// report was capped or estimated.
pub fn told(report: &TokensUsed, billed: Billed) -> TokensUsed {
    if billed.capped || report.billable() != billed.tokens {
        TokensUsed {
            total_tokens_used: i64::try_from(billed.tokens).unwrap_or(i64::MAX),
            ..TokensUsed::default()
        }
    } else {
        *report
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sealed_request_is_bounded_by_its_body_bytes_whatever_its_path() {
        // The client's form of a request, as sealed: time, encapsulation, tag, request.
        let body =
            br#"{"model":"m","messages":[{"role":"user","content":"a long answer please"}]}"#;
        for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
            let request = HttpRequest {
                method: "POST".into(),
                url: path.into(),
                http_version: "HTTP/1.1".into(),
                headers: vec![cocoon_proto::HttpHeader {
                    name: "Content-Type".into(),
                    value: "application/json".into(),
                }],
                payload: body.to_vec(),
            };
            let sealed = SEALING_OVERHEAD as usize + request.to_bytes().len();
            // A declared estimate is never cut below the whole body's.
            let ceiling = sealed_prompt_ceiling(sealed);
            assert!(
                ceiling >= (body.len() as u64).div_ceil(4),
                "{path}: {ceiling}"
            );
            // The reservation counts about the body's bytes (the slack covers a shorter path).
            let bound = sealed_bound(path, sealed, 0);
            assert!(
                bound.body_bytes.abs_diff(body.len() as u64) <= 12,
                "{path}: {}",
                bound.body_bytes
            );
        }
        assert_eq!(sealed_prompt_ceiling(10), 0);
        let bound = sealed_bound("/v1/chat/completions", 400, 0);
        assert_eq!((bound.max_tokens, bound.n), (DEFAULT_MAX_TOKENS, 1));
        assert_eq!(sealed_bound("/v1/chat/completions", 400, 77).max_tokens, 77);
        assert_eq!(sealed_bound("/v1/embeddings", 400, 77).max_tokens, 0);
    }

    use super::*;
    use cocoon_proto::TlBoxed;

    fn query(body: &str) -> Vec<u8> {
        HttpRequest {
            method: "POST".into(),
            url: "/v1/chat/completions".into(),
            http_version: "HTTP/1.1".into(),
            headers: vec![],
            payload: body.as_bytes().to_vec(),
        }
        .to_bytes()
    }

    fn body_of(query: &[u8]) -> Value {
        serde_json::from_slice(&HttpRequest::from_bytes(query).unwrap().payload).unwrap()
    }

    #[test]
    fn an_embeddings_request_reserves_its_input_only_and_is_not_rewritten() {
        let body = r#"{"model":"m","input":["a","b"]}"#;
        let request = HttpRequest {
            method: "POST".into(),
            url: "/v1/embeddings".into(),
            http_version: "HTTP/1.1".into(),
            headers: vec![],
            payload: body.as_bytes().to_vec(),
        }
        .to_bytes();
        let embeddings = bound(&request, 0).expect("bounded");
        assert_eq!(embeddings.max_tokens, 0);
        assert!(embeddings.rewritten.is_none());
        assert_eq!(
            embeddings.raw_tokens(),
            body.len() as u64 + PROMPT_SLACK_TOKENS
        );
        let chat = bound(&query(r#"{"model":"m","messages":[]}"#), 0).expect("bounded");
        assert_eq!(
            chat.max_tokens, DEFAULT_MAX_TOKENS,
            "chat still gets the default"
        );
    }

    #[test]
    fn the_bound_counts_the_prompt_and_every_choice() {
        let body = r#"{"model":"m","messages":[],"max_tokens":10,"n":3}"#;
        let bound = bound(&query(body), 0).unwrap();
        assert_eq!(bound.max_tokens, 10);
        assert_eq!(bound.n, 3);
        assert_eq!(
            bound.raw_tokens(),
            body.len() as u64 + PROMPT_SLACK_TOKENS + 30
        );
        assert!(bound.rewritten.is_none(), "nothing to change");
        // Priced: 4× coefficient and a 2× completion multiplier.
        let multipliers = Multipliers {
            completion: 20_000,
            ..Multipliers::ONE
        };
        assert_eq!(bound.reserve(4000, &multipliers), bound.raw_tokens() * 8);
    }

    #[test]
    fn the_workers_copy_carries_the_bound() {
        // No max_tokens: the default is set.
        let bound1 = bound(&query(r#"{"model":"m"}"#), 0).unwrap();
        assert_eq!(bound1.max_tokens, DEFAULT_MAX_TOKENS);
        let rewritten = body_of(bound1.rewritten.as_ref().unwrap());
        assert_eq!(rewritten["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(rewritten["model"], "m");
        // The client said less than the body: the smaller wins, in both fields.
        let body = r#"{"model":"m","max_tokens":500,"max_completion_tokens":400}"#;
        let bound2 = bound(&query(body), 20).unwrap();
        assert_eq!(bound2.max_tokens, 20);
        let rewritten = body_of(bound2.rewritten.as_ref().unwrap());
        assert_eq!(rewritten["max_tokens"], 20);
        assert_eq!(rewritten["max_completion_tokens"], 20);
    }

    #[test]
    fn the_bound_is_set_in_every_shape_of_body_and_nothing_else_changes() {
        // (body, client max) → max_tokens the worker's copy must carry, or None: unchanged.
        let cases: [(&str, i32, Option<u64>); 9] = [
            ("{}", 0, Some(DEFAULT_MAX_TOKENS)),
            (" {  } ", 0, Some(DEFAULT_MAX_TOKENS)),
            (
                "\n{ \"model\" : \"m\", \"x\": [1, {\"max_tokens\": 9}] }",
                0,
                Some(DEFAULT_MAX_TOKENS),
            ),
            (r#"{"model":"m","max_tokens":null}"#, 30, Some(30)),
            (
                r#"{"max_completion_tokens":null}"#,
                0,
                Some(DEFAULT_MAX_TOKENS),
            ),
            (r#"{"max_tokens":10}"#, 30, None),
            // A repeated field: read as a JSON parser does (the last wins), both copies fit.
            (r#"{"max_tokens":1,"max_tokens":100}"#, 0, None),
            (r#"{"max_tokens":1,"max_tokens":100}"#, 50, Some(50)),
            (r#"{"max_completion_tokens":5}"#, 0, None),
        ];
        for (body, client_max, expected) in cases {
            let read = bound(&query(body), client_max).unwrap();
            let Some(rewritten) = &read.rewritten else {
                assert_eq!(expected, None, "{body}");
                continue;
            };
            let mut sent = body_of(rewritten);
            assert_eq!(sent["max_tokens"], expected.unwrap(), "{body}");
            assert_eq!(read.max_tokens, expected.unwrap(), "{body}");
            // Everything else is as the client sent it.
            let mut original: Value = serde_json::from_str(body).unwrap();
            sent.as_object_mut().unwrap().remove("max_tokens");
            original.as_object_mut().unwrap().remove("max_tokens");
            assert_eq!(sent, original, "{body}");
        }
        // The repeated field's larger copy counts when nothing else bounds it.
        let repeated = bound(&query(r#"{"max_tokens":1,"max_tokens":100}"#), 0).unwrap();
        assert_eq!(repeated.max_tokens, 100);
        // Not an object: passed on as sent.
        for body in ["[1,2]", "\"text\"", "{\"a\":1} trailing"] {
            assert_eq!(bound(&query(body), 0).unwrap().rewritten, None, "{body}");
        }
    }

    #[test]
    fn bad_counts_are_refused_and_non_json_is_passed_on() {
        for body in [
            r#"{"n":0}"#,
            r#"{"n":129}"#,
            r#"{"n":"2"}"#,
            r#"{"max_tokens":-1}"#,
            r#"{"max_tokens":1.5}"#,
        ] {
            assert!(bound(&query(body), 0).is_err(), "{body}");
        }
        let plain = bound(&query("not json"), 7).unwrap();
        assert_eq!((plain.max_tokens, plain.n, plain.rewritten), (7, 1, None));
        let garbage = bound(b"\x01\x02", 0).unwrap();
        assert_eq!(garbage.max_tokens, DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn reports_are_capped_at_the_reservation() {
        let lie = TokensUsed {
            prompt_tokens_used: 5,
            completion_tokens_used: 100_000_000,
            total_tokens_used: 100_000_005,
            ..TokensUsed::default()
        };
        let billed = bill_report(&lie, 300);
        assert_eq!(
            billed,
            Billed {
                tokens: 300,
                capped: true
            }
        );
        assert_eq!(told(&lie, billed).total_tokens_used, 300);
        let honest = TokensUsed::from_counts(5, 0, 7, 0);
        let billed = bill_report(&honest, 300);
        assert_eq!(billed.tokens, 12);
        assert_eq!(told(&honest, billed), honest);
    }

    #[test]
    fn a_cut_answer_counts_its_prompt_by_openais_rule_not_by_the_json_around_it() {
        // 16 bytes of text: 4 tokens, + 3 for the message, + 3 for the reply.
        let chat = r#"{"model":"mock-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Count to thirty."}]}"#;
        assert_eq!(prompt_estimate(&query(chat)), 10);
        assert_eq!(
            chat.len().div_ceil(4),
            34,
            "what the whole body would have counted"
        );
        // Two messages, one with text and image parts: 8 + 6 bytes of text, the image part as its JSON.
        let parts = r#"{"messages":[{"role":"system","content":"Be brief"},{"role":"user","content":[{"type":"text","text":"What's this"},{"type":"image_url","image_url":{"url":"x"}}]}]}"#;
        let image = r#"{"image_url":{"url":"x"},"type":"image_url"}"#.len() as u64;
        assert_eq!(
            prompt_estimate(&query(parts)),
            (8 + 11 + image).div_ceil(4) + 2 * 3 + 3
        );
        // Completions: the prompt's text.
        assert_eq!(prompt_estimate(&query(r#"{"prompt":"abcdefgh"}"#)), 2);
        // Not JSON, or not an http.request: the whole body at 4 bytes a token.
        assert_eq!(prompt_estimate(&query("not json at all!")), 4);
        assert_eq!(prompt_estimate(b"garbage"), 2);
        // Never more than the whole body would count.
        assert_eq!(prompt_estimate(&query(r#"{"messages":[{},{},{}]}"#)), 6);
    }

    #[test]
    fn a_cut_answer_is_estimated_from_what_was_relayed() {
        let mut progress = Progress::default();
        progress.relayed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n");
        progress.relayed(b"data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: {}\n\n");
        assert_eq!(progress.events, 3);
        let estimate = progress.estimate(11);
        assert_eq!(estimate.categories(), [11, 0, 3, 0]);
        let mut plain = Progress::default();
        plain.relayed(&[b'x'; 10]);
        assert_eq!(plain.estimate(0).completion_tokens_used, 3);
    }
}
