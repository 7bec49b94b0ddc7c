//! `POST /v1/responses`, OpenAI's Responses API, translated onto chat completions: the network
//! and every backend speak chat completions, so the client turns a Responses request into one,
//! sends it like any other, and turns the answer (JSON or SSE) back into a Responses object or
//! its stream of events.
//!
//! What translates: `input` (a string, or messages whose content is a string or `input_text` /
//! `output_text` parts), `instructions` (a leading system message), `max_output_tokens`,
//! `temperature`, `top_p`, `stream`, `metadata`, `user`, `store` (nothing is stored here, so
//! `store` changes nothing), and the Cocoon extras (`max_coefficient`, `timeout`,
//! `request_guid`, `enable_debug`). What cannot be translated faithfully (tools, images,
//! `previous_response_id`, reasoning settings, structured output) is refused with a 400 naming
//! the field, never dropped silently.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cocoon_net::metrics::unix_time_f64;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use cocoon_net::sse::{event_data, take_event};

use crate::api::{api_error, read_body, run_completion};
use crate::ClientShared;

/// Most bytes of answer text one response collects (its final object repeats the whole text).
const MAX_ANSWER_BYTES: usize = 16 << 20;
/// Most bytes one SSE event of the chat stream may take.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// Fields passed to the chat completion under the same name.
const PASSED: [&str; 7] = [
    "temperature",
    "top_p",
    "user",
    "max_coefficient",
    "timeout",
    "request_guid",
    "enable_debug",
];
/// Fields accepted and not sent on (the answer echoes `metadata`; nothing is stored).
const ACCEPTED: [&str; 6] = [
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "stream",
    "metadata",
];

fn bad_request(message: impl Into<String>) -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_request",
        message,
    )
}

/// The text of a message's `content`: a string, or text parts.
fn content_text(content: &Value, index: usize) -> Result<String, String> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                match (kind, part.get("text").and_then(Value::as_str)) {
                    ("input_text" | "output_text" | "text", Some(t)) => text.push_str(t),
                    _ => {
                        return Err(format!(
                            "'input[{index}].content': only text parts (input_text, output_text) can be sent; got {:?}",
                            if kind.is_empty() { "a part without a type" } else { kind }
                        ))
                    }
                }
            }
            Ok(text)
        }
        _ => Err(format!(
            "'input[{index}].content' must be a string or an array of text parts"
        )),
    }
}

/// The chat completion request for a Responses request, and whether it streams.
fn translate(request: &Map<String, Value>) -> Result<(Value, bool), String> {
    if let Some(unknown) = request
        .keys()
        .find(|k| !PASSED.contains(&k.as_str()) && !ACCEPTED.contains(&k.as_str()) && *k != "store")
    {
        return Err(format!(
            "'{unknown}' is not supported by this client's /v1/responses (it translates text requests onto chat completions); supported: {}",
            ACCEPTED.iter().chain(PASSED.iter()).copied().chain(["store"]).collect::<Vec<_>>().join(", ")
        ));
    }
    let model = match request.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        _ => return Err("'model' must be a non-empty string".into()),
    };
    let mut messages = Vec::new();
    match request.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => messages.push(json!({"role": "system", "content": text})),
        Some(_) => return Err("'instructions' must be a string".into()),
    }
    match request.get("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) if !items.is_empty() => {
            for (index, item) in items.iter().enumerate() {
                let kind = item
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("message");
                if kind != "message" {
                    return Err(format!(
                        "'input[{index}]' is a {kind:?} item; only messages can be sent"
                    ));
                }
                let role = match item.get("role").and_then(Value::as_str) {
                    Some(role @ ("user" | "assistant" | "system")) => role,
                    Some("developer") => "system",
                    _ => {
                        return Err(format!(
                            "'input[{index}].role' must be user, assistant, system or developer"
                        ))
                    }
                };
                let content = item
                    .get("content")
                    .ok_or_else(|| format!("'input[{index}].content' is required"))?;
                let text = content_text(content, index)?;
                messages.push(json!({"role": role, "content": text}));
            }
        }
        _ => return Err("'input' must be a string or a non-empty array of messages".into()),
    }
    let stream = match request.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err("'stream' must be a boolean".into()),
    };
    let mut chat = Map::new();
    chat.insert("model".into(), Value::String(model));
    chat.insert("messages".into(), Value::Array(messages));
    match request.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {
            chat.insert("max_tokens".into(), Value::Number(n.clone()));
        }
        Some(_) => return Err("'max_output_tokens' must be a positive integer".into()),
    }
    for key in PASSED {
        if let Some(value) = request.get(key) {
            chat.insert(key.into(), value.clone());
        }
    }
    if stream {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok((Value::Object(chat), stream))
}

/// `POST /v1/responses`.
pub(crate) async fn responses(State(shared): State<Arc<ClientShared>>, body: Body) -> Response {
    let client_start = unix_time_f64();
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let response = match read_body(&shared, body).await {
        Ok(body) => run_response(&shared, &body, client_start).await,
        Err(response) => response,
    };
    if !response.status().is_success() {
        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
    }
    response
}

pub(crate) async fn run_response(
    shared: &Arc<ClientShared>,
    body: &[u8],
    client_start: f64,
) -> Response {
    let request: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(request)) => request,
        Ok(_) => return bad_request("request body must be a JSON object"),
        Err(error) => return bad_request(format!("request body is not valid JSON: {error}")),
    };
    let (chat, stream) = match translate(&request) {
        Ok(translated) => translated,
        Err(message) => return bad_request(message),
    };
    let chat = Bytes::from(chat.to_string());
    let answer = run_completion(shared, "/v1/chat/completions", chat, client_start).await;
    if !answer.status().is_success() {
        return answer;
    }
    let shell = Shell::new(&request);
    let (parts, body) = answer.into_parts();
    let is_sse = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if stream && is_sse {
        let state = EventStream::new(shell, body);
        let mut response =
            Body::from_stream(futures_util::stream::unfold(state, EventStream::next))
                .into_response();
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        return response;
    }
    let bytes = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return api_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_failed",
                format!("the answer broke or was too large: {error}"),
            )
        }
    };
    let completion: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(error) => {
            return api_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_failed",
                format!("the backend's chat completion is not JSON: {error}"),
            )
        }
    };
    let choice = completion.pointer("/choices/0");
    let text = choice
        .and_then(|c| c.pointer("/message/content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let usage = completion.get("usage").cloned();
    let mut response = shell.response(Some(text), finish, usage.as_ref());
    if let Some(model) = completion.get("model").and_then(Value::as_str) {
        response["model"] = json!(model);
    }
    let mut answer = axum::Json(response).into_response();
    for (name, value) in parts.headers.iter() {
        if name.as_str().starts_with("x-cocoon-") {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// What every Responses object of one request shares.
struct Shell {
    id: String,
    message_id: String,
    created_at: u64,
    request: Map<String, Value>,
}

impl Shell {
    fn new(request: &Map<String, Value>) -> Shell {
        let id: [u8; 24] = rand::random();
        let message_id: [u8; 24] = rand::random();
        Shell {
            id: format!("resp_{}", cocoon_attest::hex(&id)),
            message_id: format!("msg_{}", cocoon_attest::hex(&message_id)),
            created_at: unix_time_f64() as u64,
            request: request.clone(),
        }
    }

    /// The output message: complete with `text`, or just begun.
    fn message(&self, text: Option<&str>) -> Value {
        match text {
            Some(text) => json!({
                "type": "message", "id": self.message_id, "status": "completed",
                "role": "assistant", "content": [output_text(text)],
            }),
            None => json!({
                "type": "message", "id": self.message_id, "status": "in_progress",
                "role": "assistant", "content": [],
            }),
        }
    }

    /// The Responses object: in progress (`text` None) or finished.
    fn response(&self, text: Option<&str>, finish: Option<&str>, usage: Option<&Value>) -> Value {
        let field = |name: &str| self.request.get(name).cloned().unwrap_or(Value::Null);
        let (status, incomplete) = match (text, finish) {
            (None, _) => ("in_progress", Value::Null),
            (Some(_), Some("length")) => ("incomplete", json!({"reason": "max_output_tokens"})),
            (Some(_), _) => ("completed", Value::Null),
        };
        let usage = usage.map(|u| {
            let count = |name: &str| u.get(name).and_then(Value::as_u64).unwrap_or(0);
            let (input, output) = (count("prompt_tokens"), count("completion_tokens"));
            let cached = u
                .pointer("/prompt_tokens_details/cached_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let reasoning = u
                .pointer("/completion_tokens_details/reasoning_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let mut usage = json!({
                "input_tokens": input,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": output,
                "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": input.saturating_add(output),
            });
            // The proxy's price report, where it added one.
            for cost in ["prompt_total_cost", "completion_total_cost", "total_cost"] {
                if let Some(value) = u.get(cost) {
                    usage[cost] = value.clone();
                }
            }
            usage
        });
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": incomplete,
            "instructions": field("instructions"),
            "max_output_tokens": field("max_output_tokens"),
            "model": field("model"),
            "output": match text { Some(text) => json!([self.message(Some(text))]), None => json!([]) },
            "parallel_tool_calls": false,
            "temperature": field("temperature"),
            "top_p": field("top_p"),
            "tool_choice": "auto",
            "tools": [],
            "text": {"format": {"type": "text"}},
            "store": false,
            "metadata": self.request.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "usage": usage,
        })
    }
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

/// A chat completion SSE stream turned into Responses events as it arrives.
struct EventStream {
    shell: Shell,
    body: axum::body::BodyDataStream,
    /// Bytes of an event not complete yet.
    pending: Vec<u8>,
    /// Events ready to go.
    out: std::collections::VecDeque<Bytes>,
    text: String,
    usage: Option<Value>,
    finish: Option<String>,
    sequence: u64,
    started: bool,
    done: bool,
}

impl EventStream {
    fn new(shell: Shell, body: Body) -> EventStream {
        EventStream {
            shell,
            body: body.into_data_stream(),
            pending: Vec::new(),
            out: std::collections::VecDeque::new(),
            text: String::new(),
            usage: None,
            finish: None,
            sequence: 0,
            started: false,
            done: false,
        }
    }

    fn emit(&mut self, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        self.out
            .push_back(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    }

    fn start(&mut self) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let response = self.shell.response(None, None, None);
        self.emit("response.created", json!({"response": response.clone()}));
        self.emit("response.in_progress", json!({"response": response}));
        let item = self.shell.message(None);
        self.emit(
            "response.output_item.added",
            json!({"output_index": 0, "item": item}),
        );
        let item_id = self.shell.message_id.clone();
        self.emit(
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": output_text("")}),
        );
    }

    fn finish(&mut self) {
        self.start();
        let item_id = self.shell.message_id.clone();
        let text = std::mem::take(&mut self.text);
        self.emit(
            "response.output_text.done",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": text}),
        );
        self.emit(
            "response.content_part.done",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": output_text(&text)}),
        );
        let item = self.shell.message(Some(&text));
        self.emit(
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        );
        let response =
            self.shell
                .response(Some(&text), self.finish.as_deref(), self.usage.as_ref());
        let kind = if response["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(kind, json!({"response": response}));
        self.done = true;
    }

    fn fail(&mut self, code: &str, message: &str) {
        self.emit(
            "error",
            json!({"code": code, "message": message, "param": null}),
        );
        let mut response = self.shell.response(None, None, self.usage.as_ref());
        response["status"] = json!("failed");
        response["error"] = json!({"code": code, "message": message});
        self.emit("response.failed", json!({"response": response}));
        self.done = true;
    }

    /// Takes one complete chat SSE event.
    fn on_event(&mut self, event: &[u8]) {
        let data = event_data(event);
        if data.is_empty() {
            return;
        }
        if data.trim() == "[DONE]" {
            self.finish();
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(&data) else {
            return self.fail(
                "upstream_failed",
                "the backend sent an event that is not JSON",
            );
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the answer failed");
            let code = error
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("upstream_failed")
                .to_string();
            return self.fail(&code, message);
        }
        self.start();
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return;
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(reason.to_string());
        }
        let delta = choice
            .pointer("/delta/content")
            .and_then(Value::as_str)
            .unwrap_or("");
        if delta.is_empty() {
            return;
        }
        if self.text.len() + delta.len() > MAX_ANSWER_BYTES {
            return self.fail(
                "answer_too_large",
                "the answer is larger than this client collects for one response (16 MiB)",
            );
        }
        self.text.push_str(delta);
        let item_id = self.shell.message_id.clone();
        self.emit(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": delta}),
        );
    }

    /// Splits the pending bytes into complete events.
    fn drain_events(&mut self) {
        while !self.done {
            let Some(event) = take_event(&mut self.pending) else {
                break;
            };
            self.on_event(&event);
        }
        if !self.done && self.pending.len() > MAX_EVENT_BYTES {
            self.fail(
                "upstream_failed",
                "the backend sent an event larger than 1 MiB",
            );
        }
    }

    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, EventStream)> {
        loop {
            if let Some(event) = self.out.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            match self.body.next().await {
                Some(Ok(data)) => {
                    self.pending.extend_from_slice(&data);
                    self.drain_events();
                }
                Some(Err(error)) => {
                    let message = format!("the answer broke: {error}");
                    self.fail("upstream_failed", &message);
                }
                None => {
                    if !self.pending.is_empty() {
                        let rest = std::mem::take(&mut self.pending);
                        self.on_event(&rest);
                    }
                    if !self.done {
                        // A stream without `[DONE]` that still finished its choice is complete;
                        // one that stopped short is not.
                        if self.finish.is_some() {
                            self.finish();
                        } else {
                            self.fail("upstream_failed", "the answer ended before it was complete");
                        }
                    }
                }
            }
        }
    }
}

/// The Responses request `body` read and translated as the API does (for `cocoon-fuzz`): the
/// chat completion request it becomes and whether it streams, or why it is refused.
pub(crate) fn translate_body(body: &[u8]) -> Result<(Value, bool), String> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(request)) => translate(&request),
        Ok(_) => Err("request body must be a JSON object".into()),
        Err(error) => Err(format!("request body is not valid JSON: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn a_text_request_becomes_a_chat_completion() {
        let (chat, stream) = translate(&object(json!({
            "model": "m", "instructions": "be brief", "input": "hi",
            "max_output_tokens": 7, "temperature": 0.5, "metadata": {"k": "v"}, "store": true,
        })))
        .expect("translates");
        assert!(!stream);
        assert_eq!(
            chat,
            json!({"model": "m", "max_tokens": 7, "temperature": 0.5, "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]})
        );
    }

    #[test]
    fn messages_with_text_parts_translate_and_other_items_are_refused_by_name() {
        let (chat, stream) = translate(&object(json!({
            "model": "m", "stream": true, "input": [
                {"role": "developer", "content": "rules"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "c"}]},
            ],
        })))
        .expect("translates");
        assert!(stream);
        assert_eq!(chat["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "system", "content": "rules"},
                {"role": "user", "content": "ab"},
                {"role": "assistant", "content": "c"},
            ])
        );
        let refused = |body: Value| translate(&object(body)).expect_err("refused");
        assert!(refused(json!({"model": "m", "input": "x", "tools": []})).contains("'tools'"));
        assert!(
            refused(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}))
                .contains("'previous_response_id'")
        );
        assert!(refused(
            json!({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]})
        )
        .contains("function_call_output"));
        assert!(refused(json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}))
            .contains("input_image"));
        assert!(refused(json!({"model": "m", "input": []})).contains("'input'"));
        assert!(refused(json!({"input": "x"})).contains("'model'"));
        assert!(
            refused(json!({"model": "m", "input": "x", "max_output_tokens": 0}))
                .contains("max_output_tokens")
        );
    }

    fn events(chunks: &[&[u8]]) -> Vec<Value> {
        let request = object(json!({"model": "m", "input": "hi", "stream": true}));
        let mut stream = EventStream::new(Shell::new(&request), Body::empty());
        for chunk in chunks {
            stream.pending.extend_from_slice(chunk);
            stream.drain_events();
        }
        stream
            .out
            .iter()
            .map(|event| {
                let text = std::str::from_utf8(event).expect("utf-8");
                let (kind, data) = text.split_once('\n').expect("two lines");
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").expect("data").trim_end())
                        .expect("json");
                assert_eq!(kind.strip_prefix("event: "), data["type"].as_str());
                data
            })
            .collect()
    }

    #[test]
    fn a_chat_stream_becomes_response_events_across_any_split() {
        let chat = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
            "data: [DONE]\n\n",
        )
        .as_bytes();
        let whole = events(&[chat]);
        let kinds: Vec<&str> = whole.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let numbers: Vec<u64> = whole
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, (0..10).collect::<Vec<u64>>());
        let done = &whole[9]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["usage"]["input_tokens"], 3);
        assert_eq!(done["usage"]["output_tokens"], 2);
        assert_eq!(done["usage"]["total_tokens"], 5);
        for split in 1..chat.len() {
            let parts = events(&[&chat[..split], &chat[split..]]);
            assert_eq!(parts.len(), whole.len(), "split at {split}");
            assert_eq!(
                parts[9]["response"]["output"][0]["content"],
                done["output"][0]["content"]
            );
        }
    }

    #[test]
    fn a_cut_or_failed_stream_ends_with_a_failure_and_length_is_incomplete() {
        let failed = events(&[
            b"data: {\"error\":{\"message\":\"request timed out\",\"type\":\"timeout\"}}\n\n",
        ]);
        let kinds: Vec<&str> = failed.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["error", "response.failed"]);
        assert_eq!(failed[1]["response"]["error"]["code"], "timeout");
        let long = events(&[
            b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n",
        ]);
        let last = long.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        let huge = vec![b'x'; MAX_EVENT_BYTES + 1];
        let refused = events(&[b"data: ", &huge]);
        assert_eq!(refused.last().unwrap()["type"], "response.failed");
    }
}
