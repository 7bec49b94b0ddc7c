//! JSON shapes the mock writes, in OpenAI's field order, and the per-answer facts they repeat.

use bytes::Bytes;
use serde::Serialize;

/// Which completion endpoint a request came to; the two differ only in the JSON they write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Text,
}

/// Serialises one of this module's response types.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // serde_json fails only on non-string map keys or a failing Serialize impl; the types here
    // are plain structs of strings and numbers, so an error is a bug in this file.
    serde_json::to_vec(value).expect("mock backend response types always serialise")
}

/// Everything about one answer that its JSON repeats, computed once per request.
#[derive(Debug)]
pub struct Answer {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub finish_reason: &'static str,
}

impl Answer {
    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.prompt_tokens.saturating_add(self.completion_tokens),
        }
    }
}

/// One server-sent event, `data: <json>\n\n`, ready to be its own body frame.
pub fn sse_event<T: Serialize>(value: &T) -> Bytes {
    let json = to_json(value);
    let mut event = Vec::with_capacity(json.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(&json);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

#[derive(Serialize)]
pub struct ModelList<'a> {
    pub object: &'static str,
    pub data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
pub struct ModelEntry<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub code: &'a str,
}

/// The fields every completion object and chunk shares, in OpenAI's order.
#[derive(Serialize)]
pub struct Envelope<'a, C> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

#[derive(Serialize)]
pub struct ChatChoice<'a> {
    pub index: u32,
    pub message: AssistantMessage<'a>,
    pub finish_reason: &'a str,
}

#[derive(Serialize)]
pub struct AssistantMessage<'a> {
    pub role: &'static str,
    pub content: &'a str,
}

#[derive(Serialize)]
pub struct ChatChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    /// `null` until the last chunk, as OpenAI writes it.
    pub finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
}

/// A text-completion choice, whole or streamed.
#[derive(Serialize)]
pub struct TextChoice<'a> {
    pub index: u32,
    pub text: &'a str,
    pub finish_reason: Option<&'a str>,
}
