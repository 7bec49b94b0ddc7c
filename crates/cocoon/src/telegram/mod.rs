//! `cocoon telegram-bot`: a Telegram bot that answers chats with models on the Cocoon network.
//!
//! It long-polls the Bot API for messages (`getUpdates`), keeps one bounded conversation per
//! chat, and answers each message with a streamed chat completion from a Cocoon client's
//! OpenAI-compatible API, written into the chat as it arrives by editing one message (then
//! more, past Telegram's 4,096-character limit). Chats are answered concurrently, up to a
//! bound; within a chat one at a time, in order.
//!
//! Privacy: prompts and answers never reach the log (chat ids, sizes, timings, ids only), and
//! the bot token never appears in a log line or an error.

mod args;
mod botapi;
mod chats;
mod completion;
mod reply;
mod text;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cocoon_net::shutdown::drain_on_signals;
use cocoon_net::{Shutdown, ShutdownTrigger};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use args::TelegramBotArgs;
use botapi::{BotApi, BotApiError, BotToken, Update};
use chats::{Chats, Enqueued, HistoryBounds, Input};
use completion::{CompletionApi, CompletionError, Turn, MAX_MODEL_NAME};
use reply::ChatWriter;
use text::{peer_text, utf16_len, MESSAGE_LIMIT};

/// First pause after a failed poll; doubled after each failure in a row.
const POLL_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest pause between failed polls: a Bot API down for an hour is retried each minute.
const POLL_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Telegram shows "typing…" for 5 s after `sendChatAction`, or until the bot's next message:
/// repeated each 4 s it stays on while an answer is being written.
const TYPING_REPEAT: Duration = Duration::from_secs(4);
/// After SIGINT/SIGTERM: how long answers in progress get to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Models named in a `/model` answer (the rest are counted).
const MODELS_SHOWN: usize = 50;
/// How long the model the network lists first stays the default when no --model is given,
/// before the list is read again.
const DEFAULT_MODEL_TTL: Duration = Duration::from_secs(60);

/// What the bot was configured with, checked.
struct Settings {
    client_url: String,
    model: Option<String>,
    system_prompt: Option<String>,
    max_tokens: Option<u32>,
    history: HistoryBounds,
    max_answer_chars: usize,
    edit_interval: Duration,
    poll_timeout: Duration,
}

/// The bot's shared state.
struct Bot {
    api: BotApi,
    client: CompletionApi,
    settings: Settings,
    chats: Mutex<Chats>,
    answer_slots: Semaphore,
    /// The bot's username, to tell `/cmd@thisbot` from `/cmd@otherbot` in groups.
    username: Mutex<Option<String>>,
    /// The network's first model and when it was read (without --model).
    default_model: Mutex<Option<(String, Instant)>>,
}

/// Runs the bot until SIGINT/SIGTERM.
pub async fn run(args: TelegramBotArgs) -> Result<()> {
    let token = match (args.token.clone(), &args.token_file) {
        (Some(_), Some(_)) => bail!(
            "the bot token is given twice (--token or COCOON_TELEGRAM_TOKEN, and --token-file): give one"
        ),
        (Some(token), None) => token,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            // Infallible: any text is taken, and checked below without echoing it.
            BotToken::unchecked(&text).unwrap_or_else(|never| match never {})
        }
        (None, None) => bail!(
            "no bot token: set COCOON_TELEGRAM_TOKEN, or pass --token-file FILE (or --token)"
        ),
    };
    let poll_timeout = Duration::from_secs(args.poll_timeout_secs);
    let api =
        BotApi::new(&args.api_url, token, poll_timeout).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = CompletionApi::new(
        &args.client_url,
        args.client_api_token
            .as_ref()
            .map(|secret| secret.0.as_str()),
        Duration::from_secs(args.answer_timeout_secs),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if args
        .model
        .as_ref()
        .is_some_and(|m| m.is_empty() || m.chars().count() > MAX_MODEL_NAME)
    {
        bail!("--model must be 1 to {MAX_MODEL_NAME} characters");
    }
    let settings = Settings {
        client_url: args.client_url,
        model: args.model,
        system_prompt: args.system_prompt.filter(|p| !p.is_empty()),
        max_tokens: args.max_tokens,
        history: HistoryBounds {
            messages: args.history_messages as usize,
            chars: args.history_chars as usize,
        },
        max_answer_chars: args.max_answer_chars as usize,
        edit_interval: Duration::from_millis(args.edit_interval_ms),
        poll_timeout,
    };
    let bot = Arc::new(Bot {
        api,
        client,
        settings,
        chats: Mutex::new(Chats::new(
            args.max_chats as usize,
            args.max_queued as usize,
        )),
        answer_slots: Semaphore::new(args.max_concurrent as usize),
        username: Mutex::new(None),
        default_model: Mutex::new(None),
    });
    let (trigger, shutdown) = ShutdownTrigger::new();
    tokio::spawn(drain_on_signals(trigger));
    bot.serve(shutdown).await
}

/// Splits a message into a command and its argument, or takes it as text. `None` for a
/// command addressed to another bot (`/start@otherbot` in a group).
fn parse_input(text: &str, username: Option<&str>) -> Option<Input> {
    let Some(command_line) = text.strip_prefix('/') else {
        return Some(Input::Text(text.to_owned()));
    };
    let (head, argument) = command_line
        .split_once(char::is_whitespace)
        .unwrap_or((command_line, ""));
    let (command, addressee) = head.split_once('@').unwrap_or((head, ""));
    if !addressee.is_empty() && username.is_some_and(|name| !name.eq_ignore_ascii_case(addressee)) {
        return None;
    }
    let argument = argument.trim();
    Some(match command.to_ascii_lowercase().as_str() {
        "start" | "help" => Input::Start,
        "reset" => Input::Reset,
        "model" => Input::Model((!argument.is_empty()).then(|| argument.to_owned())),
        _ => Input::Notice(format!(
            "I do not know /{}. Commands: /start, /reset, /model [NAME]; anything else is a \
             message for the model.",
            peer_text(text::truncate_chars(command, 32))
        )),
    })
}

/// How an answer's stream ended.
enum Ending {
    /// `[DONE]` or the body's end.
    Complete,
    /// Cut at --max-answer-chars.
    Cut,
    /// The API failed mid-answer.
    Failed(CompletionError),
}

impl Bot {
    fn chats(&self) -> std::sync::MutexGuard<'_, Chats> {
        self.chats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the token, then polls and dispatches until shutdown; then lets answers in
    /// progress finish (up to a grace period) and confirms the last updates to the Bot API.
    async fn serve(self: &Arc<Self>, shutdown: Shutdown) -> Result<()> {
        let mut backoff = POLL_BACKOFF_MIN;
        let username = loop {
            let answer = tokio::select! {
                _ = shutdown.draining() => return Ok(()),
                answer = self.api.get_me() => answer,
            };
            match answer {
                Ok(username) => break username,
                Err(error) if error.is_bad_token() => {
                    bail!("the Bot API refused the bot token ({error}); check it with @BotFather")
                }
                Err(error) => {
                    warn!(%error, retry_in_ms = backoff.as_millis() as u64, "cannot reach the Bot API");
                    tokio::select! {
                        _ = shutdown.draining() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(POLL_BACKOFF_MAX);
                }
            }
        };
        *self.username.lock().unwrap_or_else(|p| p.into_inner()) = username.clone();
        match self.client.models().await {
            Ok(models) => {
                if let Some(model) = &self.settings.model {
                    if !models.contains(model) {
                        warn!(model = %peer_text(model), "--model is not among the models the client API lists now");
                    }
                }
                info!(models = models.len(), "client API answers");
            }
            Err(error) => warn!(
                %error,
                "the client API does not answer; chats are told so until it does"
            ),
        }
        let name = peer_text(username.as_deref().unwrap_or(""));
        info!(bot = %name, "telegram bot up: polling for messages");
        println!(
            "telegram bot up: @{name}, answering with {}",
            self.settings.client_url
        );

        let mut tasks = JoinSet::new();
        let mut offset: i64 = 0;
        backoff = POLL_BACKOFF_MIN;
        loop {
            while tasks.try_join_next().is_some() {}
            let polled = tokio::select! {
                biased;
                _ = shutdown.draining() => break,
                polled = self.api.get_updates(offset, self.settings.poll_timeout) => polled,
            };
            match polled {
                Ok(batch) => {
                    backoff = POLL_BACKOFF_MIN;
                    if batch.skipped > 0 {
                        warn!(
                            skipped = batch.skipped,
                            "updates the bot could not read were skipped"
                        );
                    }
                    if let Some(next) = batch.next_offset {
                        offset = offset.max(next);
                    }
                    for update in batch.updates {
                        self.dispatch(update, &mut tasks);
                    }
                }
                Err(error) if error.is_bad_token() => {
                    bail!("the Bot API refused the bot token ({error}); check it with @BotFather")
                }
                Err(error) if error.retry_after().is_some() => {
                    // The gate holds the next poll for retry_after.
                    warn!(%error, "Bot API flood control on getUpdates");
                }
                Err(error) => {
                    warn!(%error, retry_in_ms = backoff.as_millis() as u64, "polling failed");
                    tokio::select! {
                        _ = shutdown.draining() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(POLL_BACKOFF_MAX);
                }
            }
        }

        info!(
            answering = tasks.len(),
            "stopping: letting answers in progress finish"
        );
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        });
        tokio::select! {
            result = drained => if result.is_err() {
                warn!(left = tasks.len(), "grace period over: dropping unfinished answers");
            },
            _ = shutdown.killed() => warn!(left = tasks.len(), "stopping now"),
        }
        tasks.abort_all();
        if offset > 0 {
            // Confirms the updates read, so a restarted bot does not answer them again.
            let confirm = self.api.get_updates(offset, Duration::ZERO);
            if let Err(error) = tokio::time::timeout(Duration::from_secs(5), confirm)
                .await
                .unwrap_or_else(|_| {
                    Err(BotApiError::Transport {
                        method: "getUpdates",
                        detail: "timed out".into(),
                    })
                })
            {
                warn!(%error, "cannot confirm the last updates; a restart may answer them again");
            }
        }
        Ok(())
    }

    /// Files one update with its chat, starting a task for the chat if it was idle.
    fn dispatch(self: &Arc<Self>, update: Update, tasks: &mut JoinSet<()>) {
        let Some(message) = update.message else {
            return;
        };
        let chat = message.chat.id;
        if message.from.as_ref().is_some_and(|from| from.is_bot) {
            return;
        }
        let Some(text) = message.text else {
            debug!(
                chat,
                update = update.update_id,
                "not a text message: ignored"
            );
            return;
        };
        let units = utf16_len(&text);
        let input = if units > MESSAGE_LIMIT {
            Input::Notice(format!(
                "That message is {units} characters long; I read messages of at most \
                 {MESSAGE_LIMIT}."
            ))
        } else {
            let username = self
                .username
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            match parse_input(&text, username.as_deref()) {
                Some(input) => input,
                None => return,
            }
        };
        debug!(
            chat,
            update = update.update_id,
            message_id = message.message_id,
            chars = units,
            "message received"
        );
        let enqueued = self.chats().enqueue(chat, input);
        match enqueued {
            Enqueued::Serve(first) => {
                let bot = self.clone();
                tasks.spawn(async move { bot.serve_chat(chat, first).await });
            }
            Enqueued::Queued => debug!(chat, "queued behind the chat's answer"),
            Enqueued::Full { tell } => {
                info!(chat, "the chat's queue is full: message dropped");
                if tell {
                    let bot = self.clone();
                    tasks.spawn(async move {
                        let text = "I am still answering your earlier messages: please wait \
                                    for them before sending more.";
                        let mut writer =
                            ChatWriter::new(&bot.api, chat, bot.settings.edit_interval, None);
                        if let Err(error) = writer.finish(text).await {
                            warn!(chat, %error, "cannot send a notice");
                        }
                    });
                }
            }
            Enqueued::NoRoom => warn!(
                chat,
                "every chat remembered is being answered: message dropped"
            ),
        }
    }

    /// Serves a chat's inputs, `first` first, in order, until it has none.
    async fn serve_chat(self: Arc<Self>, chat: i64, first: Input) {
        let mut first = Some(first);
        loop {
            // Never closed; an error would mean the bot is going away.
            let Ok(_slot) = self.answer_slots.acquire().await else {
                return;
            };
            let Some(input) = first.take().or_else(|| self.chats().next_input(chat)) else {
                return;
            };
            match input {
                Input::Text(text) => {
                    tokio::select! {
                        _ = self.answer(chat, text) => {}
                        _ = self.keep_typing(chat) => {}
                    }
                }
                Input::Start => {
                    let model = match self.model_for(chat).await {
                        Ok(model) => format!(" I answer with {}.", peer_text(&model)),
                        Err(_) => String::new(),
                    };
                    let text = format!(
                        "Hello! I am an AI assistant on Cocoon, the Confidential Compute Open \
                         Network: your messages are answered by models running in attested \
                         TEEs.{model}\n\nSend me a message to begin. /reset forgets our \
                         conversation; /model shows or switches the model."
                    );
                    self.say(chat, &text).await;
                }
                Input::Reset => {
                    if let Some(state) = self.chats().chat(chat) {
                        state.history.clear();
                    }
                    info!(chat, "history cleared");
                    self.say(chat, "Done: I forgot our conversation.").await;
                }
                Input::Model(name) => {
                    let text = self.model_command(chat, name).await;
                    self.say(chat, &text).await;
                }
                Input::Notice(text) => self.say(chat, &text).await,
            }
        }
    }

    /// Sends `text` to `chat`, paced with the chat's other writes.
    async fn say(&self, chat: i64, text: &str) {
        let last_write = self.chats().chat(chat).and_then(|s| s.last_write);
        let mut writer = ChatWriter::new(&self.api, chat, self.settings.edit_interval, last_write);
        if let Err(error) = writer.finish(text).await {
            warn!(chat, %error, "cannot write to the chat");
        }
        if let Some(state) = self.chats().chat(chat) {
            state.last_write = writer.last_write();
        }
    }

    /// `sendChatAction` typing, repeated; runs until dropped.
    async fn keep_typing(&self, chat: i64) {
        loop {
            if let Err(error) = self.api.send_typing(chat).await {
                debug!(chat, %error, "typing action failed");
            }
            tokio::time::sleep(TYPING_REPEAT).await;
        }
    }

    /// The chat's model: its `/model` choice, else --model, else the network's first.
    async fn model_for(&self, chat: i64) -> Result<String, CompletionError> {
        let chosen = self
            .chats()
            .chat(chat)
            .and_then(|state| state.model.clone());
        if let Some(model) = chosen.or_else(|| self.settings.model.clone()) {
            return Ok(model);
        }
        let cached = self
            .default_model
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((model, read_at)) = cached {
            if read_at.elapsed() < DEFAULT_MODEL_TTL {
                return Ok(model);
            }
        }
        let first = self
            .client
            .models()
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| CompletionError::Refused {
                status: 503,
                code: "no_models".into(),
                message: "the network lists no model".into(),
            })?;
        *self.default_model.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((first.clone(), Instant::now()));
        Ok(first)
    }

    /// The answer to `/model` and `/model NAME`.
    async fn model_command(&self, chat: i64, name: Option<String>) -> String {
        let models = match self.client.models().await {
            Ok(models) => models,
            Err(error) => {
                warn!(chat, %error, "cannot list models");
                return format!("The list of models cannot be read: {}", error.for_chat(""));
            }
        };
        let listed = {
            let mut list = models
                .iter()
                .take(MODELS_SHOWN)
                .map(|m| format!("• {}", peer_text(m)))
                .collect::<Vec<_>>()
                .join("\n");
            if models.len() > MODELS_SHOWN {
                list.push_str(&format!("\n… and {} more", models.len() - MODELS_SHOWN));
            }
            if models.is_empty() {
                list = "(none right now)".into();
            }
            list
        };
        match name {
            None => {
                let current = match self.model_for(chat).await {
                    Ok(model) => peer_text(&model),
                    Err(_) => "(none yet)".into(),
                };
                format!(
                    "This chat uses {current}.\n\nModels on the network:\n{listed}\n\nSwitch \
                     with /model NAME."
                )
            }
            Some(name) if models.contains(&name) => {
                if let Some(state) = self.chats().chat(chat) {
                    state.model = Some(name.clone());
                }
                info!(chat, model = %peer_text(&name), "model switched");
                format!("This chat now uses {}.", peer_text(&name))
            }
            Some(name) => format!(
                "There is no model “{}” on the network. Models:\n{listed}",
                peer_text(text::truncate_chars(&name, MAX_MODEL_NAME))
            ),
        }
    }

    /// Answers `question` in `chat`: streams the completion into the chat, then keeps the
    /// question and the answer in the chat's history.
    async fn answer(&self, chat: i64, question: String) {
        let started = Instant::now();
        let last_write = self.chats().chat(chat).and_then(|s| s.last_write);
        let mut writer = ChatWriter::new(&self.api, chat, self.settings.edit_interval, last_write);
        let outcome = self.stream_answer(chat, &question, &mut writer).await;
        let answer = match outcome {
            Ok(answer) => answer,
            Err(text) => {
                if let Err(error) = writer.finish(&text).await {
                    warn!(chat, %error, "cannot write to the chat");
                }
                None
            }
        };
        if let Some(state) = self.chats().chat(chat) {
            state.last_write = writer.last_write();
            if let Some(answer) = answer.filter(|a| !a.is_empty()) {
                state.history.push("user", &question, self.settings.history);
                state
                    .history
                    .push("assistant", &answer, self.settings.history);
            }
        }
        debug!(
            chat,
            total_ms = started.elapsed().as_millis() as u64,
            "answer handled"
        );
    }

    /// The streaming part of [`Bot::answer`]: the answer to keep (`None` if there is none), or
    /// the text to tell the chat when no answer came.
    async fn stream_answer(
        &self,
        chat: i64,
        question: &str,
        writer: &mut ChatWriter<'_>,
    ) -> Result<Option<String>, String> {
        let started = Instant::now();
        let model = self.model_for(chat).await.map_err(|error| {
            warn!(chat, %error, "no model for the chat");
            error.for_chat("")
        })?;
        let mut turns = Vec::new();
        if let Some(system) = &self.settings.system_prompt {
            turns.push(Turn {
                role: "system",
                text: system.clone(),
            });
        }
        turns.extend(self.chats().turns(chat));
        let history_turns = turns.len();
        turns.push(Turn {
            role: "user",
            text: question.to_owned(),
        });
        let mut stream = self
            .client
            .stream_chat(&model, &turns, self.settings.max_tokens)
            .await
            .map_err(|error| {
                warn!(chat, model = %peer_text(&model), %error, "the client API gave no answer");
                error.for_chat(&model)
            })?;

        let mut answer = String::new();
        let mut answer_chars = 0usize;
        let mut first_text_ms = None;
        let mut dirty = false;
        let ending = loop {
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(writer.next_write_at()), if dirty => {
                    match writer.step(&answer).await {
                        Ok(wrote) => dirty = wrote,
                        Err(error) => {
                            warn!(chat, %error, "cannot write the answer to the chat; dropping it");
                            return Ok(Some(answer));
                        }
                    }
                }
                piece = stream.next_text() => match piece {
                    Ok(Some(piece)) => {
                        if piece.is_empty() {
                            continue;
                        }
                        first_text_ms.get_or_insert_with(|| started.elapsed().as_millis() as u64);
                        let room = self.settings.max_answer_chars - answer_chars;
                        let piece_chars = piece.chars().count();
                        if piece_chars > room {
                            answer.push_str(text::truncate_chars(&piece, room));
                            answer_chars += room;
                            break Ending::Cut;
                        }
                        answer.push_str(&piece);
                        answer_chars += piece_chars;
                        dirty = true;
                    }
                    Ok(None) => break Ending::Complete,
                    Err(error) => break Ending::Failed(error),
                },
            }
        };
        drop(stream);
        let shown = match &ending {
            Ending::Complete if answer.trim().is_empty() => {
                "(The model gave an empty answer.)".to_owned()
            }
            Ending::Complete => answer.clone(),
            Ending::Cut => format!(
                "{answer}\n\n[The answer was cut at {} characters.]",
                self.settings.max_answer_chars
            ),
            Ending::Failed(error) => {
                warn!(chat, model = %peer_text(&model), %error, chars = answer_chars, "the answer broke off");
                if answer.trim().is_empty() {
                    error.for_chat(&model)
                } else {
                    format!(
                        "{answer}\n\n[The answer broke off: {}]",
                        error.for_chat(&model)
                    )
                }
            }
        };
        if let Err(error) = writer.finish(&shown).await {
            warn!(chat, %error, "cannot write the answer to the chat");
        }
        info!(
            chat,
            model = %peer_text(&model),
            history_turns,
            question_chars = question.chars().count(),
            answer_chars,
            cut = matches!(ending, Ending::Cut),
            failed = matches!(ending, Ending::Failed(_)),
            messages = writer.messages(),
            sends = writer.sends,
            edits = writer.edits,
            first_text_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "answered"
        );
        Ok(Some(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_told_from_text() {
        assert_eq!(
            parse_input("hello /reset", None),
            Some(Input::Text("hello /reset".into()))
        );
        assert_eq!(parse_input("/start", None), Some(Input::Start));
        assert_eq!(parse_input("/help", None), Some(Input::Start));
        assert_eq!(parse_input("/reset", Some("bot")), Some(Input::Reset));
        assert_eq!(parse_input("/model", None), Some(Input::Model(None)));
        assert_eq!(
            parse_input("/model  big-model \n", None),
            Some(Input::Model(Some("big-model".into())))
        );
        assert_eq!(
            parse_input("/Reset@CocoonBot", Some("cocoonbot")),
            Some(Input::Reset)
        );
        assert_eq!(parse_input("/reset@otherbot", Some("cocoonbot")), None);
        assert!(matches!(
            parse_input("/frobnicate", None),
            Some(Input::Notice(_))
        ));
    }
}
