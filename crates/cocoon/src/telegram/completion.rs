//! The Cocoon client's OpenAI-compatible API as the bot uses it: `GET /models` and streamed
//! `POST /chat/completions` (server-sent events), read as text deltas. Everything the API
//! sends is bounded: the model list, each event, the error bodies.

use std::time::Duration;

use cocoon_net::http_client::HttpClient;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::text::peer_text;

/// `/models` must answer within this; it is asked before answers and for `/model`.
const MODELS_TIMEOUT: Duration = Duration::from_secs(15);
/// A model list or an error body: far more than either needs.
const MAX_SMALL_RESPONSE: usize = 1 << 20;
/// The most models read from a list (a chat shows fewer; see the bot's `/model`).
const MAX_MODELS: usize = 1000;
/// The longest model name taken from the list or from `/model NAME`.
pub const MAX_MODEL_NAME: usize = 256;
/// The longest server-sent event line: a delta is a few characters, its JSON envelope a few
/// hundred bytes; a line past this is a broken or hostile server.
const MAX_EVENT_LINE: usize = 1 << 20;

/// One turn of a conversation as the API takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Turn {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// Its text.
    pub text: String,
}

/// Why the API did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum CompletionError {
    /// Not reached, or no answer in time.
    #[error("client API unreachable: {0}")]
    Unreachable(String),
    /// An OpenAI-style error answer.
    #[error("client API answered {status} ({code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error's `code`, or empty.
        code: String,
        /// The error's `message`, escaped and bounded.
        message: String,
    },
    /// An answer that is not what the API documents, or an error event in the stream.
    #[error("the answer failed: {0}")]
    Broken(String),
}

impl CompletionError {
    /// What the chat is told.
    pub fn for_chat(&self, model: &str) -> String {
        match self {
            CompletionError::Unreachable(_) => {
                "The Cocoon network cannot be reached right now (the bot's client API is down). \
                 Please try again later."
                    .to_owned()
            }
            CompletionError::Refused {
                status: 404 | 503, ..
            } if model.is_empty() => {
                "No model is available on the network right now. Please try again later.".to_owned()
            }
            CompletionError::Refused { status: 404, .. } => format!(
                "The model “{}” does not exist on the network. Send /model to see the models \
                 there are.",
                peer_text(model)
            ),
            CompletionError::Refused { status: 503, .. } => format!(
                "No worker serves “{}” right now. Please try again in a moment.",
                peer_text(model)
            ),
            CompletionError::Refused { status: 402, .. } => {
                "The bot's Cocoon account cannot pay for this answer right now.".to_owned()
            }
            CompletionError::Refused {
                status, message, ..
            } => format!("The answer failed ({status}): {message}"),
            CompletionError::Broken(detail) => format!("The answer failed: {detail}"),
        }
    }
}

/// A client of the API at one base URL (e.g. `http://127.0.0.1:10000/v1`).
pub struct CompletionApi {
    models_http: HttpClient,
    chat_http: HttpClient,
    authorization: Option<String>,
    answer_timeout: Duration,
}

impl CompletionApi {
    /// `base_url` ends with the API's version path (`/v1`). `api_token` is the client's
    /// `api_token` when it has one. An answer must begin, and each later chunk arrive, within
    /// `answer_timeout`.
    pub fn new(
        base_url: &str,
        api_token: Option<&str>,
        answer_timeout: Duration,
    ) -> Result<CompletionApi, String> {
        let models_http = HttpClient::new(base_url, &[], MODELS_TIMEOUT, MAX_SMALL_RESPONSE)
            .map_err(|e| format!("--client-url: {e}"))?;
        let chat_http = HttpClient::new(base_url, &[], answer_timeout, MAX_SMALL_RESPONSE)
            .map_err(|e| format!("--client-url: {e}"))?;
        Ok(CompletionApi {
            models_http,
            chat_http,
            authorization: api_token.map(|token| format!("Bearer {token}")),
            answer_timeout,
        })
    }

    fn headers(&self) -> Vec<(&str, &str)> {
        self.authorization
            .as_deref()
            .map(|value| ("authorization", value))
            .into_iter()
            .collect()
    }

    /// The ids `/models` lists, in its order (at most 1,000, names of at most 256 characters).
    pub async fn models(&self) -> Result<Vec<String>, CompletionError> {
        let answer = self
            .models_http
            .send(http::Method::GET, "/models", &self.headers(), Vec::new())
            .await
            .map_err(|e| CompletionError::Unreachable(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(refusal(answer.status.as_u16(), &answer.body));
        }
        let list: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| CompletionError::Broken(format!("/models is not JSON: {e}")))?;
        let ids = list["data"]
            .as_array()
            .ok_or_else(|| CompletionError::Broken("/models has no data list".into()))?
            .iter()
            .filter_map(|model| model["id"].as_str())
            .filter(|id| !id.is_empty() && id.chars().count() <= MAX_MODEL_NAME)
            .take(MAX_MODELS)
            .map(str::to_owned)
            .collect();
        Ok(ids)
    }

    /// Starts a streamed chat completion of `turns` by `model`.
    pub async fn stream_chat(
        &self,
        model: &str,
        turns: &[Turn],
        max_tokens: Option<u32>,
    ) -> Result<AnswerStream, CompletionError> {
        let messages: Vec<Value> = turns
            .iter()
            .map(|turn| json!({"role": turn.role, "content": turn.text}))
            .collect();
        let mut body = json!({"model": model, "messages": messages, "stream": true});
        if let Some(max_tokens) = max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        let mut headers = self.headers();
        headers.push(("content-type", "application/json"));
        headers.push(("accept", "text/event-stream"));
        let response = self
            .chat_http
            .open(
                http::Method::POST,
                "/chat/completions",
                &headers,
                body.to_string().into_bytes(),
            )
            .await
            .map_err(|e| CompletionError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body = response.into_body();
        if !status.is_success() {
            let bytes = tokio::time::timeout(
                self.answer_timeout,
                http_body_util::Limited::new(body, MAX_SMALL_RESPONSE).collect(),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .map(|collected| collected.to_bytes().to_vec())
            .unwrap_or_default();
            return Err(refusal(status.as_u16(), &bytes));
        }
        Ok(AnswerStream {
            body,
            pending: Vec::new(),
            scanned: 0,
            done: false,
            idle_timeout: self.answer_timeout,
        })
    }
}

/// An error answer: its OpenAI-style `error` object when it has one.
fn refusal(status: u16, body: &[u8]) -> CompletionError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = &parsed["error"];
    let code = match &error["code"] {
        Value::String(code) => peer_text(code),
        Value::Number(code) => code.to_string(),
        _ => String::new(),
    };
    let message = error["message"]
        .as_str()
        .map(peer_text)
        .unwrap_or_else(|| peer_text(&String::from_utf8_lossy(&body[..body.len().min(200)])));
    CompletionError::Refused {
        status,
        code,
        message,
    }
}

/// A streamed answer, read as text deltas.
pub struct AnswerStream {
    body: hyper::body::Incoming,
    /// Bytes of an unfinished line.
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no newline.
    scanned: usize,
    done: bool,
    idle_timeout: Duration,
}

impl AnswerStream {
    /// The next piece of text; `None` at the end (`[DONE]`, or the body's end). Pieces may be
    /// empty (role-only and usage events).
    pub async fn next_text(&mut self) -> Result<Option<String>, CompletionError> {
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some(found) = self.pending[self.scanned..]
                .iter()
                .position(|b| *b == b'\n')
            {
                let line: Vec<u8> = self.pending.drain(..=self.scanned + found).collect();
                self.scanned = 0;
                if let Some(text) = self.event_line(&line)? {
                    return Ok(Some(text));
                }
                continue;
            }
            self.scanned = self.pending.len();
            if self.pending.len() > MAX_EVENT_LINE {
                return Err(CompletionError::Broken(format!(
                    "an event line longer than {MAX_EVENT_LINE} bytes"
                )));
            }
            let frame = tokio::time::timeout(self.idle_timeout, self.body.frame())
                .await
                .map_err(|_| {
                    CompletionError::Broken(format!(
                        "nothing more arrived for {} s",
                        self.idle_timeout.as_secs()
                    ))
                })?;
            match frame {
                None => {
                    // A last line without its newline still counts.
                    self.done = true;
                    let line = std::mem::take(&mut self.pending);
                    return self.event_line(&line);
                }
                Some(Err(error)) => {
                    return Err(CompletionError::Broken(format!(
                        "the stream broke: {error}"
                    )))
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// The text of one event line (`data: {json}`); `None` for lines that carry none.
    fn event_line(&mut self, line: &[u8]) -> Result<Option<String>, CompletionError> {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\r', '\n']);
        let Some(data) = line.strip_prefix("data:") else {
            // Comments, `event:` and `id:` lines, and the blank line ending an event.
            return Ok(None);
        };
        let data = data.trim_start();
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let event: Value = serde_json::from_str(data)
            .map_err(|e| CompletionError::Broken(format!("an event is not JSON: {e}")))?;
        if let Some(error) = event.get("error") {
            let message = error["message"].as_str().unwrap_or("no reason given");
            return Err(CompletionError::Broken(peer_text(message)));
        }
        let text = event["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap_or_default();
        Ok(Some(text.to_owned()))
    }
}
