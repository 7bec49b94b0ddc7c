//! The flags of `cocoon telegram-bot`, and the text its `--help` ends with.

use std::path::PathBuf;

use clap::Args;

use super::botapi::BotToken;

/// Options of `cocoon telegram-bot`.
#[derive(Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct TelegramBotArgs {
    /// The bot's token from @BotFather. On the command line it is visible to other users of
    /// this machine: prefer the environment variable or --token-file.
    #[arg(long, env = "COCOON_TELEGRAM_TOKEN", hide_env_values = true, value_parser = BotToken::unchecked)]
    pub(super) token: Option<BotToken>,
    /// A file holding the bot's token (surrounding whitespace ignored), instead of --token.
    #[arg(long)]
    pub(super) token_file: Option<PathBuf>,
    /// The Cocoon client's OpenAI-compatible API, with its version path (`cocoon client` or
    /// `cocoon devnet` print it).
    #[arg(long, default_value = "http://127.0.0.1:10000/v1")]
    pub(super) client_url: String,
    /// The client's `api_token`, when its config sets one.
    #[arg(long, env = "COCOON_CLIENT_API_TOKEN", hide_env_values = true, value_parser = Secret::parse)]
    pub(super) client_api_token: Option<Secret>,
    /// The Bot API server (a local telegram-bot-api server, or a stand-in in tests).
    #[arg(long, default_value = "https://api.telegram.org")]
    pub(super) api_url: String,
    /// The model chats use until they pick another with `/model NAME`. Default: the first
    /// model the client's /v1/models lists.
    #[arg(long)]
    pub(super) model: Option<String>,
    /// A system prompt put before every conversation.
    #[arg(long)]
    pub(super) system_prompt: Option<String>,
    /// `max_tokens` of every request (the client reserves payment for this many); default:
    /// the client's.
    #[arg(long)]
    pub(super) max_tokens: Option<u32>,
    /// Messages of a chat's history sent with each request (questions and answers; the
    /// oldest are forgotten first). `/reset` forgets them all.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(super) history_messages: u32,
    /// Characters of a chat's history kept, over all its messages (an answer longer than
    /// this is kept cut to it).
    #[arg(long, default_value_t = 16_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(super) history_chars: u32,
    /// Chats remembered; past it, the least recently used idle chat is forgotten. Histories
    /// take at most about max-chats × history-chars × 4 bytes.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(super) max_chats: u32,
    /// Chats answered at the same time (each chat gets one answer at a time).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(super) max_concurrent: u32,
    /// Messages a chat may send while its answer is being written, answered in order
    /// afterwards; beyond them the chat is asked to wait and the messages are dropped.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(super) max_queued: u32,
    /// Milliseconds between two writes (a message sent or edited) of an answer in one chat:
    /// the answer is shown as it streams at most this often. Telegram allows about one
    /// message a second per chat.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub(super) edit_interval_ms: u64,
    /// Characters of an answer shown (and kept); the rest is cut off, and the chat told.
    /// Answers longer than 4,096 UTF-16 units are split into several messages.
    #[arg(long, default_value_t = 16_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(super) max_answer_chars: u32,
    /// Seconds a `getUpdates` long poll waits for new messages.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=50))]
    pub(super) poll_timeout_secs: u64,
    /// Seconds an answer may take to begin, and between two streamed pieces of it.
    #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(super) answer_timeout_secs: u64,
}

/// A secret from the command line or the environment; its `Debug` never shows it.
#[derive(Clone)]
pub(super) struct Secret(pub(super) String);

impl Secret {
    fn parse(text: &str) -> Result<Secret, std::convert::Infallible> {
        Ok(Secret(text.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

const AFTER_HELP: &str = "\
Chat commands: /start (or /help) greets and says what the bot does; /reset forgets the chat's \
conversation; /model shows the chat's model and the models the network offers; /model NAME \
switches the chat to NAME.

Every text message is sent with the chat's history to the client API as a streamed chat \
completion; a 'typing' action is shown while the answer is written, and the answer appears by \
edits of one message (several past 4,096 characters, cut at paragraphs, lines or words).

Bounds: messages over 4,096 characters are refused; a chat's history keeps at most \
--history-messages messages and --history-chars characters; at most --max-chats chats are \
remembered; --max-concurrent chats are answered at once and each may queue --max-queued \
messages. The bot honours Telegram's flood control (429 retry_after) per chat and retries a \
failing Bot API with backoff (0.5 s doubling to 60 s).

Privacy: the log holds chat ids, sizes, timings and ids, never a prompt, an answer or the \
token.

Example, against `cocoon devnet --mock`:
  COCOON_TELEGRAM_TOKEN=123456:ABC... cocoon telegram-bot --client-url http://127.0.0.1:10000/v1";
