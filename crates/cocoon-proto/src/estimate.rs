//! The documented estimate of a request's prompt tokens, for billing an answer cut short before
//! its worker reported usage. The proxy computes it on a body it can read; for a sealed body the
//! client declares it in the clear and the worker, which opens the body, refuses a declaration
//! lower than this (so the proxy may bill by it).

use serde_json::Value;

/// Bytes of text per token in the estimates.
pub const BYTES_PER_TOKEN: u64 = 4;

/// Tokens OpenAI counts per chat message beyond its text, and to prime the reply ("How to count
/// tokens with tiktoken", for its chat models).
const TOKENS_PER_MESSAGE: u64 = 3;
const TOKENS_PER_REPLY: u64 = 3;

/// The prompt tokens of a request body (JSON) when the worker never said: a chat body's
/// messages by OpenAI's rule (text at [`BYTES_PER_TOKEN`] bytes a token, plus
/// [`TOKENS_PER_MESSAGE`] each and [`TOKENS_PER_REPLY`]), a completions body's `prompt` text at
/// [`BYTES_PER_TOKEN`] bytes a token, anything else its whole body so; never more than the whole
/// body so. Tool definitions and non-text parts count as their JSON. Runs only for an answer cut
/// short (and for its crash checkpoints), never on the relay path.
pub fn prompt_estimate(body: &[u8]) -> u64 {
    fn text_bytes(value: &Value) -> u64 {
        match value {
            Value::Null => 0,
            Value::String(text) => text.len() as u64,
            // Content parts: the text of text parts, the JSON of the rest (an image URL…).
            Value::Array(parts) => parts
                .iter()
                .map(|part| match part.get("text") {
                    Some(Value::String(text)) => text.len() as u64,
                    _ => json_bytes(part),
                })
                .sum(),
            other => json_bytes(other),
        }
    }
    fn json_bytes(value: &Value) -> u64 {
        serde_json::to_vec(value).map_or(0, |v| v.len() as u64)
    }
    let whole = (body.len() as u64).div_ceil(BYTES_PER_TOKEN);
    let body = serde_json::from_slice::<Value>(body).ok();
    let Some(Value::Object(body)) = body else {
        return whole;
    };
    let tools = body.get("tools").map_or(0, json_bytes);
    let counted = if let Some(Value::Array(messages)) = body.get("messages") {
        let text: u64 = messages
            .iter()
            .map(|m| text_bytes(m.get("content").unwrap_or(&Value::Null)))
            .sum();
        (text + tools).div_ceil(BYTES_PER_TOKEN)
            + TOKENS_PER_MESSAGE * messages.len() as u64
            + TOKENS_PER_REPLY
    } else if let Some(prompt) = body.get("prompt") {
        (text_bytes(prompt) + tools).div_ceil(BYTES_PER_TOKEN)
    } else {
        whole
    };
    counted.min(whole)
}
