//! The Telegram Bot API (<https://core.telegram.org/bots/api>) as the bot uses it: JSON calls
//! `POST <api-url>/bot<token>/<method>`, answers `{"ok":true,"result":…}` or `{"ok":false,
//! "error_code":…,"description":…,"parameters":{"retry_after":…}}` turned into typed errors,
//! and the flood control a 429 asks for.
//!
//! The token is a secret: it only ever appears in the request path, and every error text that
//! could carry the path has it replaced by `<token>`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use cocoon_net::http_client::HttpClient;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::text::peer_text;

/// Most answers are a message or `true`; 1 MiB is far above any of them.
const MAX_CALL_RESPONSE: usize = 1 << 20;
/// A `getUpdates` answer holds at most 100 updates (the bot asks for no more), each a message
/// of at most 4,096 characters plus its metadata and the message it replies to: well under
/// this.
const MAX_UPDATES_RESPONSE: usize = 8 << 20;
/// How long a call other than a long poll may take, answer included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A long poll's HTTP timeout beyond the poll's own `timeout`: the server answers an empty
/// poll after `timeout` seconds, give or take its own delays.
const POLL_SLACK: Duration = Duration::from_secs(15);
/// Updates asked for per poll (the Bot API's maximum).
pub const UPDATES_PER_POLL: u32 = 100;
/// The longest `retry_after` honoured as given; a larger one (a server gone wrong) is capped
/// so that a gate cannot hold a chat for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A bot token, as given by @BotFather (`123456789:AA…`). Its `Debug` never shows it.
#[derive(Clone)]
pub struct BotToken(String);

impl std::fmt::Debug for BotToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotToken(<redacted>)")
    }
}

impl BotToken {
    /// Any text, checked later by [`BotToken::check`] (a clap parser that refused it would
    /// print the token in its error).
    pub fn unchecked(text: &str) -> Result<BotToken, std::convert::Infallible> {
        Ok(BotToken(text.trim().to_owned()))
    }

    /// Refuses a token that cannot be one, without echoing it: it goes into a URL path, so
    /// only the characters of real tokens (digits, `:`, letters, `_`, `-`) are accepted.
    pub fn check(&self) -> Result<(), String> {
        let token = &self.0;
        if token.is_empty() {
            return Err("the bot token is empty".into());
        }
        if token.len() > 256 {
            return Err(format!(
                "the bot token is {} characters long; @BotFather's are under 100",
                token.len()
            ));
        }
        if let Some(bad) = token
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')))
        {
            return Err(format!(
                "the bot token holds the character {:?}; tokens are digits, ':', letters, '_' and '-'",
                bad.escape_debug().to_string()
            ));
        }
        if !token.contains(':') {
            return Err("the bot token has no ':' (expected <bot id>:<secret>)".into());
        }
        Ok(())
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum BotApiError {
    /// The Bot API was not reached or did not answer in time (the text names no token).
    #[error("{method}: {detail}")]
    Transport {
        /// The method called.
        method: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The Bot API answered `ok:false`.
    #[error("{method}: refused with {code}: {description}")]
    Refused {
        /// The method called.
        method: &'static str,
        /// `error_code` (an HTTP status: 400, 401, 403, 409, 429…).
        code: i64,
        /// `description`, escaped and bounded.
        description: String,
        /// `parameters.retry_after` of a 429.
        retry_after: Option<Duration>,
    },
    /// The answer was not the documented JSON.
    #[error("{method}: unexpected answer: {detail}")]
    Malformed {
        /// The method called.
        method: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

impl BotApiError {
    /// The retry delay of a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BotApiError::Refused {
                code: 429,
                retry_after,
                ..
            } => Some(retry_after.unwrap_or(Duration::from_secs(1))),
            _ => None,
        }
    }

    /// Whether the Bot API refused the token itself (401 Unauthorized, or 404 for a path
    /// with a token it does not know): nothing will work until it is replaced.
    pub fn is_bad_token(&self) -> bool {
        matches!(
            self,
            BotApiError::Refused {
                code: 401 | 404,
                ..
            }
        )
    }
}

/// The documented envelope of every answer.
#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// The parts of an `Update` the bot reads; the rest is ignored.
#[derive(Debug, Deserialize)]
pub struct Update {
    /// Its id: the next poll's `offset` is the largest seen plus one.
    pub update_id: i64,
    /// A new message, when this update is one.
    #[serde(default)]
    pub message: Option<Message>,
}

/// The parts of a `Message` the bot reads.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// Its id within the chat.
    pub message_id: i64,
    /// Where it was sent.
    pub chat: Chat,
    /// Who sent it (absent for messages sent on behalf of a chat).
    #[serde(default)]
    pub from: Option<User>,
    /// Its text, for text messages.
    #[serde(default)]
    pub text: Option<String>,
}

/// The parts of a `Chat` the bot reads.
#[derive(Debug, Deserialize)]
pub struct Chat {
    /// Its id.
    pub id: i64,
}

/// The parts of a `User` the bot reads.
#[derive(Debug, Deserialize)]
pub struct User {
    /// Whether the sender is a bot (the bot never answers bots: two bots would talk forever).
    #[serde(default)]
    pub is_bot: bool,
    /// Its username (the bot's own, from `getMe`).
    #[serde(default)]
    pub username: Option<String>,
}

/// A `getUpdates` batch: the updates that parsed, and the next offset (past those that did
/// not, too, so that one odd update cannot stall the bot).
#[derive(Debug, Default)]
pub struct Updates {
    /// The updates, in order.
    pub updates: Vec<Update>,
    /// The offset to poll with next.
    pub next_offset: Option<i64>,
    /// Updates that did not parse.
    pub skipped: usize,
}

/// Until when calls are held after a 429: per chat, and one for calls without a chat.
#[derive(Default)]
struct Gates {
    chatless: Option<Instant>,
    chats: HashMap<i64, Instant>,
}

/// A Bot API client for one bot.
pub struct BotApi {
    calls: HttpClient,
    polls: HttpClient,
    token: BotToken,
    gates: Mutex<Gates>,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BotApi({:?})", self.calls)
    }
}

impl BotApi {
    /// A client for the Bot API at `api_url` (e.g. `https://api.telegram.org`), long polls
    /// lasting `poll_timeout`.
    pub fn new(api_url: &str, token: BotToken, poll_timeout: Duration) -> Result<BotApi, String> {
        token.check()?;
        let calls = HttpClient::new(api_url, &[], CALL_TIMEOUT, MAX_CALL_RESPONSE)
            .map_err(|e| format!("--api-url: {e}"))?;
        let polls = HttpClient::new(
            api_url,
            &[],
            poll_timeout + POLL_SLACK,
            MAX_UPDATES_RESPONSE,
        )
        .map_err(|e| format!("--api-url: {e}"))?;
        Ok(BotApi {
            calls,
            polls,
            token,
            gates: Mutex::new(Gates::default()),
        })
    }

    fn gates(&self) -> std::sync::MutexGuard<'_, Gates> {
        self.gates.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Until when calls for `chat` are held, if they are.
    fn gate(&self, chat: Option<i64>) -> Option<Instant> {
        let gates = self.gates();
        let until = match chat {
            Some(chat) => gates.chats.get(&chat).copied(),
            None => gates.chatless,
        };
        until.filter(|until| *until > Instant::now())
    }

    /// Holds calls for `chat` until `retry_after` has passed.
    fn close_gate(&self, chat: Option<i64>, retry_after: Duration) {
        let now = Instant::now();
        let until = now + retry_after.min(MAX_RETRY_AFTER);
        let mut gates = self.gates();
        match chat {
            Some(chat) => {
                // Expired gates go, so the map holds only chats being held now.
                gates.chats.retain(|_, until| *until > now);
                let gate = gates.chats.entry(chat).or_insert(until);
                *gate = (*gate).max(until);
            }
            None => gates.chatless = Some(gates.chatless.map_or(until, |g| g.max(until))),
        }
    }

    /// Whether calls for `chat` are held by a 429 now.
    pub fn is_held(&self, chat: i64) -> bool {
        self.gate(Some(chat)).is_some()
    }

    /// One call: waits out the chat's gate, sends, and closes the gate on a 429.
    async fn call(
        &self,
        method: &'static str,
        chat: Option<i64>,
        params: &Value,
        long_poll: bool,
    ) -> Result<Value, BotApiError> {
        while let Some(until) = self.gate(chat) {
            tokio::time::sleep_until(until).await;
        }
        let http = if long_poll { &self.polls } else { &self.calls };
        let path = format!("/bot{}/{method}", self.token.0);
        let answer = http
            .send(
                http::Method::POST,
                &path,
                &[("content-type", "application/json")],
                params.to_string().into_bytes(),
            )
            .await
            .map_err(|e| BotApiError::Transport {
                method,
                detail: self.redact(&e.to_string()),
            })?;
        let envelope: Envelope =
            serde_json::from_slice(&answer.body).map_err(|e| BotApiError::Malformed {
                method,
                detail: format!("HTTP {} with a body that is not JSON ({e})", answer.status),
            })?;
        if envelope.ok {
            return Ok(envelope.result);
        }
        let code = envelope
            .error_code
            .unwrap_or_else(|| i64::from(answer.status.as_u16()));
        let retry_after = envelope
            .parameters
            .and_then(|p| p.retry_after)
            .map(Duration::from_secs);
        let error = BotApiError::Refused {
            method,
            code,
            description: peer_text(&self.redact(envelope.description.as_deref().unwrap_or(""))),
            retry_after,
        };
        if let Some(retry_after) = error.retry_after() {
            self.close_gate(chat, retry_after);
        }
        Err(error)
    }

    /// A call retried after each 429 whose delay is at most `max_wait` (the gate makes the
    /// retry wait), up to `attempts` in all.
    async fn call_patiently(
        &self,
        method: &'static str,
        chat: Option<i64>,
        params: &Value,
        attempts: u32,
        max_wait: Duration,
    ) -> Result<Value, BotApiError> {
        let mut attempt = 1;
        loop {
            match self.call(method, chat, params, false).await {
                Err(error)
                    if attempt < attempts
                        && error.retry_after().is_some_and(|wait| wait <= max_wait) =>
                {
                    tracing::warn!(
                        chat,
                        method,
                        retry_after_secs = error.retry_after().unwrap_or_default().as_secs(),
                        "Bot API flood control (429): waiting before retrying"
                    );
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn redact(&self, text: &str) -> String {
        text.replace(&self.token.0, "<token>")
    }

    /// `getMe`: the bot's username; checks the token.
    pub async fn get_me(&self) -> Result<Option<String>, BotApiError> {
        let result = self.call("getMe", None, &json!({}), false).await?;
        let user: User = serde_json::from_value(result).map_err(|e| BotApiError::Malformed {
            method: "getMe",
            detail: e.to_string(),
        })?;
        Ok(user.username)
    }

    /// `getUpdates`: new messages from `offset` on, waiting up to `timeout` for one.
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout: Duration,
    ) -> Result<Updates, BotApiError> {
        let params = json!({
            "offset": offset,
            "timeout": timeout.as_secs(),
            "limit": UPDATES_PER_POLL,
            "allowed_updates": ["message"],
        });
        let result = self.call("getUpdates", None, &params, true).await?;
        let Value::Array(items) = result else {
            return Err(BotApiError::Malformed {
                method: "getUpdates",
                detail: "the result is not an array".into(),
            });
        };
        let mut batch = Updates::default();
        for item in items {
            let id = item.get("update_id").and_then(Value::as_i64);
            if let Some(id) = id {
                let next = id.saturating_add(1);
                batch.next_offset = Some(batch.next_offset.map_or(next, |o| o.max(next)));
            }
            match serde_json::from_value::<Update>(item) {
                Ok(update) => batch.updates.push(update),
                Err(_) => batch.skipped += 1,
            }
        }
        Ok(batch)
    }

    /// `sendMessage` with plain text; returns the new message's id. Retried after a 429 of
    /// up to `max_wait`.
    pub async fn send_message(
        &self,
        chat: i64,
        text: &str,
        max_wait: Duration,
    ) -> Result<i64, BotApiError> {
        let params = json!({"chat_id": chat, "text": text});
        let result = self
            .call_patiently("sendMessage", Some(chat), &params, 3, max_wait)
            .await?;
        result
            .get("message_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| BotApiError::Malformed {
                method: "sendMessage",
                detail: "no message_id in the result".into(),
            })
    }

    /// `editMessageText` with plain text. "Message is not modified" counts as done: the text
    /// shown is the one asked for (Telegram trims whitespace, so two texts can show the same).
    pub async fn edit_message_text(
        &self,
        chat: i64,
        message_id: i64,
        text: &str,
        max_wait: Duration,
    ) -> Result<(), BotApiError> {
        let params = json!({"chat_id": chat, "message_id": message_id, "text": text});
        match self
            .call_patiently("editMessageText", Some(chat), &params, 3, max_wait)
            .await
        {
            Err(BotApiError::Refused {
                code: 400,
                description,
                ..
            }) if description.contains("message is not modified") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// `sendChatAction` typing, unless the chat is held by a 429 (the indicator is a nicety;
    /// it never waits).
    pub async fn send_typing(&self, chat: i64) -> Result<(), BotApiError> {
        if self.is_held(chat) {
            return Ok(());
        }
        let params = json!({"chat_id": chat, "action": "typing"});
        self.call("sendChatAction", Some(chat), &params, false)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_without_being_echoed() {
        let good = BotToken::unchecked(" 123456:AAbb-cc_DD \n").unwrap();
        assert_eq!(good.0, "123456:AAbb-cc_DD");
        good.check().unwrap();
        assert_eq!(format!("{good:?}"), "BotToken(<redacted>)");
        let secret = "123456:secret/../x";
        let error = BotToken::unchecked(secret).unwrap().check().unwrap_err();
        assert!(!error.contains("secret"), "{error}");
        assert!(BotToken::unchecked("").unwrap().check().is_err());
        assert!(BotToken::unchecked("nocolon").unwrap().check().is_err());
    }

    #[test]
    fn updates_parse_leniently() {
        let message: Update = serde_json::from_value(json!({
            "update_id": 7,
            "message": {"message_id": 3, "date": 0, "chat": {"id": -100, "type": "group"},
                        "from": {"id": 1, "is_bot": false, "first_name": "A"}, "text": "hi",
                        "entities": []}
        }))
        .unwrap();
        let inner = message.message.unwrap();
        assert_eq!((inner.chat.id, inner.text.as_deref()), (-100, Some("hi")));
        let other: Update =
            serde_json::from_value(json!({"update_id": 8, "edited_message": {}})).unwrap();
        assert!(other.message.is_none());
    }

    #[tokio::test]
    async fn a_429_holds_only_its_own_chat() {
        let token = BotToken::unchecked("1:a").unwrap();
        let api = BotApi::new("http://127.0.0.1:9", token, Duration::from_secs(1)).unwrap();
        api.close_gate(Some(5), Duration::from_secs(60));
        assert!(api.is_held(5));
        assert!(!api.is_held(6));
        assert!(api.gate(None).is_none());
        api.close_gate(None, Duration::from_secs(60));
        assert!(api.gate(None).is_some());
    }
}
