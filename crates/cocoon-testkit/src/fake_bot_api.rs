//! A stand-in for the Telegram Bot API (<https://core.telegram.org/bots/api>) on loopback, for
//! testing `cocoon telegram-bot`: `GET`/`POST /bot<TOKEN>/<method>` with JSON (or query)
//! parameters, answers `{"ok":true,"result":…}` or `{"ok":false,"error_code":…,
//! "description":…[,"parameters":{"retry_after":…}]}` as the documented API does, a
//! `getUpdates` that honours `offset`, `limit` and the long poll's `timeout`, message ids per
//! chat, and Telegram's checks on message texts (not empty, at most 4,096 UTF-16 units, an
//! edit must change the text).
//!
//! Tests play the users ([`FakeBotApi::user_says`]), script failures
//! ([`FakeBotApi::fail_next`]), and read every call the bot made, with the instant it
//! arrived ([`FakeBotApi::calls`]), and the messages as the chats show them
//! ([`FakeBotApi::bot_messages`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Telegram's limit on a message's text, in UTF-16 code units.
pub const TEXT_LIMIT: usize = 4096;
/// The stand-in bot's username (`getMe`).
pub const BOT_USERNAME: &str = "cocoon_test_bot";

/// One call the bot made.
#[derive(Clone, Debug)]
pub struct Call {
    /// The method (`sendMessage`…).
    pub method: String,
    /// When it arrived.
    pub at: Instant,
    /// Its parameters.
    pub params: Value,
    /// Whether it was answered `ok:true`.
    pub ok: bool,
    /// The `error_code` it was answered with, if not.
    pub error_code: Option<i64>,
}

impl Call {
    /// Its `chat_id` parameter.
    pub fn chat_id(&self) -> Option<i64> {
        int_param(&self.params, "chat_id")
    }
}

/// A message the bot sent, as the chat shows it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BotMessage {
    /// Its id.
    pub message_id: i64,
    /// Its text now.
    pub text: String,
    /// Times it was edited.
    pub edits: usize,
}

/// A failure to answer a call with, instead of serving it.
#[derive(Clone, Debug)]
struct Failure {
    code: i64,
    description: String,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct Books {
    token: String,
    /// Updates not yet confirmed by an offset past them.
    updates: VecDeque<(i64, Value)>,
    next_update_id: i64,
    /// The next message id per chat (users' and the bot's share the sequence, as in Telegram).
    next_message_id: HashMap<i64, i64>,
    /// The bot's messages by chat and id.
    messages: BTreeMap<(i64, i64), BotMessage>,
    calls: Vec<Call>,
    failures: HashMap<String, VecDeque<Failure>>,
}

impl Books {
    fn message_id(&mut self, chat: i64) -> i64 {
        let next = self.next_message_id.entry(chat).or_insert(1);
        *next += 1;
        *next - 1
    }
}

struct Shared {
    state: Mutex<Books>,
    new_update: Notify,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, Books> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running stand-in; dropping it stops the server.
pub struct FakeBotApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn int_param(params: &Value, name: &str) -> Option<i64> {
    match &params[name] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn str_param<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
    params[name].as_str()
}

fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

fn refuse(code: i64, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(seconds) = retry_after {
        body["parameters"] = json!({"retry_after": seconds});
    }
    let status = u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(body)).into_response()
}

fn message_json(chat: i64, message_id: i64, text: &str) -> Value {
    json!({
        "message_id": message_id,
        "date": 1_700_000_000,
        "chat": {"id": chat, "type": "private"},
        "from": {"id": 123456, "is_bot": true, "first_name": "Cocoon", "username": BOT_USERNAME},
        "text": text,
    })
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    Path((bot_token, method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let params: Value = if body.is_empty() {
        json!(query)
    } else {
        match serde_json::from_slice(&body) {
            Ok(params) => params,
            Err(_) => return refuse(400, "Bad Request: can't parse JSON", None),
        }
    };
    let response = answer(&shared, &bot_token, &method, &params).await;
    let (ok, error_code) = if response.status().is_success() {
        (true, None)
    } else {
        (false, Some(i64::from(response.status().as_u16())))
    };
    shared.state().calls.push(Call {
        method,
        at,
        params,
        ok,
        error_code,
    });
    response
}

async fn answer(shared: &Shared, bot_token: &str, method: &str, params: &Value) -> Response {
    {
        let mut state = shared.state();
        if bot_token.strip_prefix("bot") != Some(state.token.as_str()) {
            return refuse(401, "Unauthorized", None);
        }
        if let Some(failure) = state.failures.get_mut(method).and_then(VecDeque::pop_front) {
            return refuse(failure.code, &failure.description, failure.retry_after);
        }
    }
    match method {
        "getMe" => ok(json!({
            "id": 123456, "is_bot": true, "first_name": "Cocoon", "username": BOT_USERNAME,
        })),
        "getUpdates" => get_updates(shared, params).await,
        "sendChatAction" => {
            if int_param(params, "chat_id").is_none() || str_param(params, "action").is_none() {
                return refuse(400, "Bad Request: chat_id and action are required", None);
            }
            ok(json!(true))
        }
        "sendMessage" => {
            let (Some(chat), Some(text)) =
                (int_param(params, "chat_id"), str_param(params, "text"))
            else {
                return refuse(400, "Bad Request: chat_id and text are required", None);
            };
            if let Some(refusal) = check_text(text) {
                return refusal;
            }
            let mut state = shared.state();
            let message_id = state.message_id(chat);
            state.messages.insert(
                (chat, message_id),
                BotMessage {
                    message_id,
                    text: text.to_owned(),
                    edits: 0,
                },
            );
            ok(message_json(chat, message_id, text))
        }
        "editMessageText" => {
            let (Some(chat), Some(message_id), Some(text)) = (
                int_param(params, "chat_id"),
                int_param(params, "message_id"),
                str_param(params, "text"),
            ) else {
                return refuse(
                    400,
                    "Bad Request: chat_id, message_id and text are required",
                    None,
                );
            };
            if let Some(refusal) = check_text(text) {
                return refusal;
            }
            let mut state = shared.state();
            let Some(message) = state.messages.get_mut(&(chat, message_id)) else {
                return refuse(400, "Bad Request: message to edit not found", None);
            };
            // Telegram compares the texts after trimming them; the stand-in compares them as
            // sent, so that tests see every text the bot meant to show.
            if message.text == text {
                return refuse(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message", None);
            }
            message.text = text.to_owned();
            message.edits += 1;
            ok(message_json(chat, message_id, text))
        }
        _ => refuse(404, "Not Found", None),
    }
}

fn check_text(text: &str) -> Option<Response> {
    if text.trim().is_empty() {
        return Some(refuse(400, "Bad Request: message text is empty", None));
    }
    if utf16_len(text) > TEXT_LIMIT {
        return Some(refuse(400, "Bad Request: message is too long", None));
    }
    None
}

async fn get_updates(shared: &Shared, params: &Value) -> Response {
    let offset = int_param(params, "offset").unwrap_or(0);
    let limit = int_param(params, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(int_param(params, "timeout").unwrap_or(0).max(0) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = shared.new_update.notified();
        tokio::pin!(notified);
        // Registered before the state is read, so an update added in between wakes it.
        notified.as_mut().enable();
        {
            let mut state = shared.state();
            // An offset confirms every update before it.
            while state.updates.front().is_some_and(|(id, _)| *id < offset) {
                state.updates.pop_front();
            }
            let batch: Vec<Value> = state
                .updates
                .iter()
                .filter(|(id, _)| *id >= offset)
                .take(limit)
                .map(|(_, update)| update.clone())
                .collect();
            if !batch.is_empty() || tokio::time::Instant::now() >= deadline {
                return ok(Value::Array(batch));
            }
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

impl FakeBotApi {
    /// Starts a stand-in for the bot whose token is `token`, on an ephemeral loopback port.
    pub async fn start(token: &str) -> std::io::Result<FakeBotApi> {
        let shared = Arc::new(Shared {
            state: Mutex::new(Books {
                token: token.to_owned(),
                next_update_id: 1,
                ..Books::default()
            }),
            new_update: Notify::new(),
        });
        let app = Router::new()
            .route("/{bot_token}/{method}", any(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeBotApi {
            addr,
            shared,
            server,
        })
    }

    /// The API's URL (`http://127.0.0.1:PORT`), for `--api-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A user writes `text` in the private chat `chat`; returns the message's id.
    pub fn user_says(&self, chat: i64, text: &str) -> i64 {
        let message_id = {
            let mut state = self.shared.state();
            let message_id = state.message_id(chat);
            let update_id = state.next_update_id;
            state.next_update_id += 1;
            let update = json!({
                "update_id": update_id,
                "message": {
                    "message_id": message_id,
                    "date": 1_700_000_000,
                    "chat": {"id": chat, "type": "private", "first_name": "Tester"},
                    "from": {"id": chat, "is_bot": false, "first_name": "Tester"},
                    "text": text,
                },
            });
            state.updates.push_back((update_id, update));
            message_id
        };
        self.shared.new_update.notify_waiters();
        message_id
    }

    /// Answers the next call of `method` with `ok:false`, `error_code` and `description`
    /// (and `parameters.retry_after` when given) instead of serving it.
    pub fn fail_next(
        &self,
        method: &str,
        error_code: i64,
        description: &str,
        retry_after: Option<u64>,
    ) {
        self.shared
            .state()
            .failures
            .entry(method.to_owned())
            .or_default()
            .push_back(Failure {
                code: error_code,
                description: description.to_owned(),
                retry_after,
            });
    }

    /// Every call so far, in the order they were answered.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.state().calls.clone()
    }

    /// The calls of `method` to `chat`, in order.
    pub fn calls_to(&self, method: &str, chat: i64) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|call| call.method == method && call.chat_id() == Some(chat))
            .collect()
    }

    /// The bot's messages in `chat` as they show now, oldest first.
    pub fn bot_messages(&self, chat: i64) -> Vec<BotMessage> {
        self.shared
            .state()
            .messages
            .range((chat, i64::MIN)..=(chat, i64::MAX))
            .map(|(_, message)| message.clone())
            .collect()
    }

    /// The bot's messages in `chat` sent after the user's message `after`, oldest first.
    pub fn replies_to(&self, chat: i64, after: i64) -> Vec<BotMessage> {
        self.bot_messages(chat)
            .into_iter()
            .filter(|message| message.message_id > after)
            .collect()
    }
}
