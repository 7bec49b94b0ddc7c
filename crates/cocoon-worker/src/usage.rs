//! Token counting from the backend's own `usage` report, for JSON answers and for SSE streams
//! alike (the reference cannot read SSE, so streamed answers went unbilled there).
//!
//! The SSE side is an incremental event splitter: bytes go in as the backend sends them,
//! complete events come out unchanged, usage is picked from whichever event carries it, and a
//! usage-only event is dropped when the app did not ask for it (we force it on the backend).

use std::sync::LazyLock;

use cocoon_net::sse::find_event_end;
use cocoon_proto::{Multipliers, TokensUsed};
use memchr::memmem::Finder;
use serde_json::{Map, Value};

/// Converts an OpenAI `usage` object into the wire's four categories (raw counts, before the
/// price adjustment). The total is their sum: the backend's `total_tokens` is not trusted, so a
/// backend claiming 100,000,000 total tokens for a 6-token answer bills 6. Negative counts are
/// 0 and nothing wraps.
pub fn tokens_from_usage(usage: &Value) -> Option<TokensUsed> {
    let field = |v: &Value, name: &str| v.get(name).and_then(Value::as_u64);
    let prompt = field(usage, "prompt_tokens")?;
    let completion = field(usage, "completion_tokens").unwrap_or(0);
    let cached = usage
        .get("prompt_tokens_details")
        .and_then(|d| field(d, "cached_tokens"))
        .unwrap_or(0);
    let reasoning = usage
        .get("completion_tokens_details")
        .and_then(|d| field(d, "reasoning_tokens"))
        .unwrap_or(0);
    Some(TokensUsed::from_counts(
        prompt, cached, completion, reasoning,
    ))
}

/// What a worker's tokens cost the client: the reference's worker adds this to every `usage`
/// it passes on (`prompt_total_cost`, `completion_total_cost`, `total_cost`, in nano-TON).
#[derive(Clone, Copy, Debug)]
pub struct Pricing {
    /// This worker's coefficient (1000 = 1.0×).
    pub coefficient: u32,
    /// The root's multipliers.
    pub multipliers: Multipliers,
    /// The root's `price_per_token`, nano-TON.
    pub price_per_token: u64,
}

impl Pricing {
    /// Adds the cost of `tokens` to `usage`: each category adjusted by the coefficient and its
    /// multiplier (as the proxy bills), prompt and cached tokens as the prompt's cost,
    /// completion and reasoning tokens as the completion's, times the price per token
    /// (saturating).
    pub fn annotate(&self, usage: &mut Map<String, Value>, tokens: &TokensUsed) {
        let [prompt, cached, completion, reasoning] = tokens
            .adjusted(self.coefficient, &self.multipliers)
            .categories();
        let cost = |a: u64, b: u64| a.saturating_add(b).saturating_mul(self.price_per_token);
        let (prompt_cost, completion_cost) = (cost(prompt, cached), cost(completion, reasoning));
        usage.insert("prompt_total_cost".into(), prompt_cost.into());
        usage.insert("completion_total_cost".into(), completion_cost.into());
        usage.insert(
            "total_cost".into(),
            prompt_cost.saturating_add(completion_cost).into(),
        );
    }

    /// A JSON answer body with the cost added to its `usage`; `None` when it has no usage.
    pub fn annotate_body(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut value: Value = serde_json::from_slice(body).ok()?;
        let tokens = tokens_from_usage(value.get("usage")?)?;
        self.annotate(value.get_mut("usage")?.as_object_mut()?, &tokens);
        serde_json::to_vec(&value).ok()
    }
}

/// Usage from a complete JSON answer body.
pub fn tokens_from_json_body(body: &[u8]) -> Option<TokensUsed> {
    let value: Value = serde_json::from_slice(body).ok()?;
    tokens_from_usage(value.get("usage")?)
}

/// Splits an SSE byte stream into events, reading usage on the way.
#[derive(Debug, Default)]
pub struct SseUsageTracker {
    pending: Vec<u8>,
    strip_usage_only_events: bool,
    usage: Option<TokensUsed>,
    events: u64,
    /// Events carrying generated text (one per token on llama.cpp-family servers).
    content_events: u64,
    /// When known, the usage event is passed on with its cost added.
    pricing: Option<Pricing>,
}

/// What becomes of one event.
enum Verdict {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

/// Prompt tokens guessed from prompt text when a backend reports none: OpenAI's rule of thumb
/// of four bytes of English per token.
pub const BYTES_PER_TOKEN_ESTIMATE: usize = 4;

impl SseUsageTracker {
    /// A tracker; `strip_usage_only_events` drops `choices: []` usage chunks from the output;
    /// with `pricing` the usage event is passed on with its cost (see [`Pricing::annotate`]).
    pub fn new(strip_usage_only_events: bool, pricing: Option<Pricing>) -> SseUsageTracker {
        SseUsageTracker {
            strip_usage_only_events,
            pricing,
            ..SseUsageTracker::default()
        }
    }

    /// Feeds bytes; appends every complete event to `out` (unless stripped).
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut input: &[u8] = data;
        let owned;
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(data);
            owned = std::mem::take(&mut self.pending);
            input = &owned;
        }
        // Kept events are copied in contiguous runs, one copy per run rather than per event.
        let mut start = 0;
        let mut kept_from = 0;
        while let Some((end, separator)) = find_event_end(&input[start..]) {
            let event_end = start + end + separator;
            self.events += 1;
            match self.inspect(&input[start..event_end]) {
                Verdict::Keep => {}
                Verdict::Drop => {
                    out.extend_from_slice(&input[kept_from..start]);
                    kept_from = event_end;
                }
                Verdict::Replace(event) => {
                    out.extend_from_slice(&input[kept_from..start]);
                    out.extend_from_slice(&event);
                    kept_from = event_end;
                }
            }
            start = event_end;
        }
        out.extend_from_slice(&input[kept_from..start]);
        self.pending.extend_from_slice(&input[start..]);
    }

    /// Flushes an unterminated trailing event, if any.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let rest = std::mem::take(&mut self.pending);
        if rest.is_empty() {
            return;
        }
        match self.inspect(&rest) {
            Verdict::Keep => out.extend_from_slice(&rest),
            Verdict::Drop => {}
            Verdict::Replace(event) => out.extend_from_slice(&event),
        }
    }

    /// Records usage from an event, and says what to pass on: the event, nothing (a usage-only
    /// event the app did not ask for), or the event with its usage's cost added.
    fn inspect(&mut self, event: &[u8]) -> Verdict {
        if carries_text(event) {
            self.content_events += 1;
        }
        // Cheap pre-filter: only events mentioning usage are parsed.
        if USAGE_KEY.find(event).is_none() {
            return Verdict::Keep;
        }
        let mut verdict = Verdict::Keep;
        for line in event.split(|b| *b == b'\n') {
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let Ok(mut value) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
                continue;
            };
            let Some(tokens) = value.get("usage").and_then(tokens_from_usage) else {
                continue;
            };
            self.usage = Some(tokens);
            let no_choices = value
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(|c| c.is_empty());
            verdict = if self.strip_usage_only_events && no_choices {
                Verdict::Drop
            } else if let Some(pricing) = &self.pricing {
                if let Some(usage) = value.get_mut("usage").and_then(Value::as_object_mut) {
                    pricing.annotate(usage, &tokens);
                }
                let mut event = b"data: ".to_vec();
                // A Value always serialises.
                serde_json::to_writer(&mut event, &value).unwrap_or_default();
                event.extend_from_slice(b"\n\n");
                Verdict::Replace(event)
            } else {
                Verdict::Keep
            };
        }
        verdict
    }

    /// The last usage seen.
    pub fn usage(&self) -> Option<TokensUsed> {
        self.usage
    }

    /// Events seen so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The count to bill when the stream carried no usage (llama-cpp-python's server sends none,
    /// even when asked): one completion token per event with generated text, as llama.cpp-family
    /// servers send one event per token, and the prompt estimated from its size.
    pub fn estimate(&self, prompt_bytes: usize) -> TokensUsed {
        let prompt =
            u64::try_from(prompt_bytes.div_ceil(BYTES_PER_TOKEN_ESTIMATE)).unwrap_or(u64::MAX);
        TokensUsed::from_counts(prompt, 0, self.content_events, 0)
    }
}

/// The keys every event is searched for, built once: building a searcher per event was 2.5 %
/// of the relay's CPU.
static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static TEXT_KEYS: LazyLock<[Finder<'static>; 2]> =
    LazyLock::new(|| [Finder::new(b"\"content\":"), Finder::new(b"\"text\":")]);

/// Whether an event carries generated text: a non-empty string after `"content":` (chat) or
/// `"text":` (completions), whatever the spacing.
fn carries_text(event: &[u8]) -> bool {
    TEXT_KEYS.iter().any(|key| {
        key.find_iter(event).any(|at| {
            let rest = event[at + key.needle().len()..].trim_ascii_start();
            rest.first() == Some(&b'"') && rest.get(1).is_some_and(|b| *b != b'"')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7,\"prompt_tokens_details\":{\"cached_tokens\":1}}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn the_usage_event_carries_its_cost_across_any_split() {
        // 5 prompt tokens (1 cached), 2 completion; 1.5× coefficient, cached at 0.5×,
        // 20 nano-TON a token: prompt floor(4 × 1.5) + floor(1 × 1.5 × 0.5) = 6 + 0 tokens.
        let pricing = Pricing {
            coefficient: 1500,
            multipliers: Multipliers {
                cached: 5_000,
                ..Multipliers::ONE
            },
            price_per_token: 20,
        };
        for split in 0..=STREAM.len() {
            let mut tracker = SseUsageTracker::new(false, Some(pricing));
            let mut out = Vec::new();
            tracker.push(&STREAM.as_bytes()[..split], &mut out);
            tracker.push(&STREAM.as_bytes()[split..], &mut out);
            tracker.finish(&mut out);
            let text = String::from_utf8(out).unwrap();
            let usage_line = text
                .lines()
                .find(|l| l.contains("\"usage\""))
                .expect("the usage event is kept");
            let event: Value = serde_json::from_str(&usage_line["data: ".len()..]).unwrap();
            let usage = &event["usage"];
            assert_eq!(usage["prompt_total_cost"], 6 * 20, "split {split}");
            assert_eq!(usage["completion_total_cost"], 3 * 20);
            assert_eq!(usage["total_cost"], 9 * 20);
            assert_eq!(
                usage["prompt_tokens"], 5,
                "the counts stay as the backend said"
            );
            assert!(text.ends_with("data: [DONE]\n\n"));
            assert_eq!(
                text.matches("\n\n").count(),
                4,
                "every event kept, none merged"
            );
        }
        // Stripped when the app did not ask for usage: no cost event either.
        let mut tracker = SseUsageTracker::new(true, Some(pricing));
        let mut out = Vec::new();
        tracker.push(STREAM.as_bytes(), &mut out);
        assert!(!String::from_utf8(out).unwrap().contains("usage"));
        let body = br#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#;
        let priced: Value = serde_json::from_slice(&pricing.annotate_body(body).unwrap()).unwrap();
        assert_eq!(priced["usage"]["total_cost"], 20 * (7 + 3));
        assert!(pricing.annotate_body(br#"{"choices":[]}"#).is_none());
    }

    #[test]
    fn counts_usage_across_any_split_and_strips_when_asked() {
        for strip in [false, true] {
            for split in 0..STREAM.len() {
                let mut tracker = SseUsageTracker::new(strip, None);
                let mut out = Vec::new();
                tracker.push(&STREAM.as_bytes()[..split], &mut out);
                tracker.push(&STREAM.as_bytes()[split..], &mut out);
                tracker.finish(&mut out);
                let usage = tracker.usage().expect("usage found");
                assert_eq!(usage.prompt_tokens_used, 4);
                assert_eq!(usage.cached_tokens_used, 1);
                assert_eq!(usage.completion_tokens_used, 2);
                assert_eq!(usage.total_tokens_used, 7);
                let text = String::from_utf8(out).unwrap();
                assert_eq!(text.contains("\"usage\""), !strip);
                assert!(text.ends_with("data: [DONE]\n\n"));
                assert_eq!(tracker.events(), 4);
            }
        }
    }

    #[test]
    fn a_stream_without_usage_is_estimated_from_its_text_events() {
        // llama-cpp-python's chunks: a role-only first event, one event per token, an empty
        // final delta.
        let stream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"The\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"\"}}]}\n\n\
data: {\"choices\": [{\"delta\": {\"content\": \" capital\"}}]}\n\n\
data: {\"choices\": [{\"delta\": {\"content\": null}}]}\n\n\
data: {\"choices\":[{\"text\":\" is\",\"index\":0}]}\n\n\
data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";
        let mut tracker = SseUsageTracker::new(true, None);
        let mut out = Vec::new();
        tracker.push(stream.as_bytes(), &mut out);
        tracker.finish(&mut out);
        assert_eq!(out, stream.as_bytes());
        assert!(tracker.usage().is_none());
        let estimate = tracker.estimate(41);
        assert_eq!(estimate.completion_tokens_used, 3);
        assert_eq!(estimate.prompt_tokens_used, 11);
        assert_eq!(estimate.total_tokens_used, 14);
    }

    #[test]
    fn text_events_are_counted_once_each_across_any_split() {
        // An event with both keys counts once; a key whose value starts in the next event
        // does not count; the last event has no terminator.
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"text\":\"b\"}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\n\n\"x\"}}]}\n\n\
data: {\"choices\":[{\"text\":\"c\"}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"d\"}}]}";
        for split in 0..=stream.len() {
            let mut tracker = SseUsageTracker::new(false, None);
            let mut out = Vec::new();
            tracker.push(&stream.as_bytes()[..split], &mut out);
            tracker.push(&stream.as_bytes()[split..], &mut out);
            tracker.finish(&mut out);
            assert_eq!(out, stream.as_bytes(), "split at {split}");
            assert_eq!(
                tracker.estimate(0).completion_tokens_used,
                3,
                "split at {split}"
            );
            assert_eq!(tracker.events(), 5, "split at {split}");
        }
    }

    #[test]
    fn json_usage_with_reasoning() {
        let body = br#"{"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30,"completion_tokens_details":{"reasoning_tokens":5}}}"#;
        let usage = tokens_from_json_body(body).unwrap();
        assert_eq!(usage.completion_tokens_used, 15);
        assert_eq!(usage.reasoning_tokens_used, 5);
        assert_eq!(usage.prompt_tokens_used, 10);
        assert!(tokens_from_json_body(b"not json").is_none());
    }

    #[test]
    fn a_backend_lying_in_total_tokens_bills_its_itemised_counts() {
        let body =
            br#"{"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":100000000}}"#;
        let usage = tokens_from_json_body(body).unwrap();
        assert_eq!(usage.total_tokens_used, 6);
        let huge = format!(
            r#"{{"usage":{{"prompt_tokens":{},"completion_tokens":{}}}}}"#,
            i64::MAX,
            i64::MAX
        );
        let usage = tokens_from_json_body(huge.as_bytes()).unwrap();
        assert_eq!(usage.total_tokens_used, i64::MAX, "saturates, never wraps");
        let negative = br#"{"usage":{"prompt_tokens":-5,"completion_tokens":2}}"#;
        assert!(tokens_from_json_body(negative).is_none());
    }
}
