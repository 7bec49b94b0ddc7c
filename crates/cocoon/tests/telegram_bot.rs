//! `cocoon telegram-bot` as a process, between a stand-in Telegram Bot API
//! (`cocoon_testkit::fake_bot_api`) and a real client API: an in-process devnet whose worker
//! forwards to a scripted backend streaming a chosen text. Users write through the stand-in;
//! the tests read every Bot API call (with the instant it arrived), the messages as the chats
//! show them, and the request bodies the backend received.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cocoon_testkit::fake_bot_api::{BotMessage, Call, FakeBotApi, TEXT_LIMIT};
use cocoon_testkit::scripted_backend::{Script, ScriptedBackend};
use cocoon_testkit::{wait_until, Devnet};
use serde_json::Value;

const TOKEN: &str = "123456:AAF-secret_token_xyz";
const MODEL: &str = "scripted-model";
/// The bot's pace in these tests (`--edit-interval-ms`): short, so streams show several edits.
const EDIT_INTERVAL: Duration = Duration::from_millis(300);

/// The bot process, killed when dropped (a failed assertion must not leave it running).
struct BotProcess {
    child: Child,
    log: PathBuf,
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl BotProcess {
    fn start(api_url: &str, client_url: &str, extra: &[&str], dir: &Path) -> BotProcess {
        let log = dir.join(format!("bot-{}.log", rand::random::<u32>()));
        let stderr = std::fs::File::create(&log).unwrap();
        let interval = EDIT_INTERVAL.as_millis().to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_cocoon"))
            .args([
                "telegram-bot",
                "--api-url",
                api_url,
                "--client-url",
                client_url,
            ])
            .args(["--edit-interval-ms", &interval, "--poll-timeout-secs", "1"])
            .args(extra)
            .env("COCOON_TELEGRAM_TOKEN", TOKEN)
            // Debug: the privacy check below reads everything the bot logs.
            .env("COCOON_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the bot");
        BotProcess { child, log }
    }

    /// SIGTERM, then waits up to 10 s for the process to exit; its success.
    async fn terminate(&mut self) -> bool {
        // SAFETY: kill only sends a signal to our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..500 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the bot did not stop within 10 s of SIGTERM");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A devnet whose worker forwards to a scripted backend, and a stand-in Bot API.
struct Harness {
    backend: ScriptedBackend,
    devnet: Devnet,
    api: FakeBotApi,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn start(script: Script) -> Harness {
        let backend = ScriptedBackend::start(MODEL, script).await.unwrap();
        let devnet = Devnet::builder()
            .backend_url(&backend.url())
            .start()
            .await
            .expect("devnet starts");
        devnet.wait_ready(Duration::from_secs(20)).await.unwrap();
        Harness {
            backend,
            devnet,
            api: FakeBotApi::start(TOKEN).await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn bot(&self, extra: &[&str]) -> BotProcess {
        BotProcess::start(
            &self.api.url(),
            &self.devnet.client_base_url(),
            extra,
            self.dir.path(),
        )
    }

    /// The user says `text` in `chat`; waits until the bot's replies to it read `expected`
    /// in full, and returns them.
    async fn exchange(&self, chat: i64, text: &str, expected: &str) -> Vec<BotMessage> {
        let asked = self.api.user_says(chat, text);
        self.replies(chat, asked, |reply| reply == expected).await
    }

    /// Waits until the bot's replies to the user's message `asked`, put together, satisfy
    /// `done`; returns them.
    async fn replies(&self, chat: i64, asked: i64, done: impl Fn(&str) -> bool) -> Vec<BotMessage> {
        wait_until("the bot's reply", || {
            let replies = self.api.replies_to(chat, asked);
            let text: String = replies.iter().map(|m| m.text.as_str()).collect();
            std::future::ready(done(&text))
        })
        .await;
        self.api.replies_to(chat, asked)
    }
}

fn joined(messages: &[BotMessage]) -> String {
    messages.iter().map(|m| m.text.as_str()).collect()
}

/// The messages (role, content) of the backend's `n`-th request.
fn sent_messages(backend: &ScriptedBackend, n: usize) -> Vec<(String, String)> {
    let bodies = backend.bodies();
    let body = bodies.get(n).unwrap_or(&Value::Null);
    body["messages"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn text_stream(text: &str, chunk_chars: usize, delay_ms: u64) -> Script {
    Script::Text {
        text: text.to_owned(),
        chunk_chars,
        delay: Duration::from_millis(delay_ms),
    }
}

/// Writes (sends and edits) to `chat`, in order.
fn writes(api: &FakeBotApi, chat: i64) -> Vec<Call> {
    api.calls()
        .into_iter()
        .filter(|c| c.chat_id() == Some(chat))
        .filter(|c| c.method == "sendMessage" || c.method == "editMessageText")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_answered_in_its_chat_with_what_the_backend_streamed() {
    const ANSWER: &str = "Lighthouse keepers on Cocoon answer privately: zebra-quartz-42.";
    const QUESTION: &str = "Tell me about marmalade-harbour, please.";
    let harness = Harness::start(text_stream(ANSWER, 6, 20)).await;
    let mut bot = harness.bot(&[]);
    let replies = harness.exchange(1001, QUESTION, ANSWER).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].text, ANSWER);
    assert_eq!(
        harness.api.bot_messages(1002),
        vec![],
        "no other chat was written to"
    );

    let body = &harness.backend.bodies()[0];
    assert_eq!(body["model"], MODEL, "the network's first model by default");
    assert_eq!(body["stream"], true);
    assert_eq!(
        sent_messages(&harness.backend, 0),
        [("user".to_owned(), QUESTION.to_owned())]
    );

    // SIGTERM: the bot stops, confirming the updates it read so that a restart does not
    // answer them again.
    assert!(bot.terminate().await, "{}", bot.log());
    let last_poll = harness
        .api
        .calls()
        .into_iter()
        .rev()
        .find(|c| c.method == "getUpdates")
        .unwrap();
    assert_eq!(last_poll.params["offset"], 2, "{:?}", last_poll.params);
    assert_eq!(last_poll.params["timeout"], 0);

    // Privacy: neither the question, nor the answer, nor the token reach the log, which does
    // name the chat and the sizes. Read once the bot has exited: the chat sees the last edit
    // before the bot writes its "answered" line.
    let log = bot.log();
    assert!(log.contains("answered") && log.contains("1001"), "{log}");
    for secret in ["marmalade-harbour", "zebra-quartz", "secret_token"] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_edits_keep_to_the_pace_in_each_chat_and_chats_are_answered_at_once() {
    // 60 pieces 40 ms apart: about 2.4 s of streaming, shown at most every 300 ms.
    let answer: String = (0..60).map(|n| format!("w{n:02} ")).collect();
    let harness = Harness::start(text_stream(&answer, 4, 40)).await;
    let _bot = harness.bot(&[]);
    let (first, second) = (2001, 2002);
    let asked_first = harness.api.user_says(first, "count for me");
    let asked_second = harness.api.user_says(second, "count for me too");
    harness.replies(first, asked_first, |t| t == answer).await;
    harness.replies(second, asked_second, |t| t == answer).await;

    for chat in [first, second] {
        let writes = writes(&harness.api, chat);
        let edits = writes
            .iter()
            .filter(|c| c.method == "editMessageText")
            .count();
        assert!(
            edits >= 3,
            "chat {chat}: the answer was streamed by edits, got {edits}"
        );
        for pair in writes.windows(2) {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= EDIT_INTERVAL,
                "chat {chat}: two writes {gap:?} apart, under the pace of {EDIT_INTERVAL:?}"
            );
        }
    }
    // Both answers were being written at the same time.
    let (a, b) = (writes(&harness.api, first), writes(&harness.api, second));
    assert!(
        a[0].at < b[b.len() - 1].at && b[0].at < a[a.len() - 1].at,
        "the two chats were answered one after the other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_answers_are_split_into_messages_under_the_limit() {
    // About 11,000 UTF-16 units: paragraphs, lines, emoji (two units each), and one long
    // paragraph without line breaks.
    let mut answer = String::new();
    for n in 0..120 {
        answer.push_str(&format!(
            "Paragraph {n}: the network answers 🚀 with attested workers 🎉.\n"
        ));
        if n % 5 == 4 {
            answer.push('\n');
        }
    }
    for n in 0..500 {
        answer.push_str(&format!("word{n} "));
    }
    answer.push_str("The end.");
    let units: usize = answer.chars().map(char::len_utf16).sum();
    assert!(units > 2 * TEXT_LIMIT, "{units}");
    let harness = Harness::start(text_stream(&answer, 300, 5)).await;
    let _bot = harness.bot(&[]);
    let replies = harness.exchange(3001, "write a lot", &answer).await;

    assert!(replies.len() >= 3, "{} messages", replies.len());
    for reply in &replies {
        let units: usize = reply.text.chars().map(char::len_utf16).sum();
        assert!(units <= TEXT_LIMIT, "a message of {units} units");
    }
    assert_eq!(joined(&replies), answer);
    // Cut at line ends where the text has them.
    assert!(replies[0].text.ends_with('\n'), "{:?}", &replies[0].text);
    let refused: Vec<Call> = harness.api.calls().into_iter().filter(|c| !c.ok).collect();
    assert!(refused.is_empty(), "the Bot API refused {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_sent_with_each_message_and_reset_forgets_it() {
    const ANSWER: &str = "An answer.";
    let harness = Harness::start(text_stream(ANSWER, 4, 5)).await;
    let _bot = harness.bot(&[]);
    let chat = 4001;
    harness.exchange(chat, "first question", ANSWER).await;
    harness.exchange(chat, "second question", ANSWER).await;
    let pair = |role: &str, text: &str| (role.to_owned(), text.to_owned());
    assert_eq!(
        sent_messages(&harness.backend, 1),
        [
            pair("user", "first question"),
            pair("assistant", ANSWER),
            pair("user", "second question"),
        ]
    );
    // Another chat has its own conversation.
    harness.exchange(chat + 1, "elsewhere", ANSWER).await;
    assert_eq!(
        sent_messages(&harness.backend, 2),
        [pair("user", "elsewhere")]
    );

    let asked = harness.api.user_says(chat, "/reset");
    harness
        .replies(chat, asked, |t| t.contains("forgot our conversation"))
        .await;
    harness.exchange(chat, "third question", ANSWER).await;
    assert_eq!(
        sent_messages(&harness.backend, 3),
        [pair("user", "third question")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_control_429_is_honoured_and_refusals_do_not_stop_the_bot() {
    const ANSWER: &str = "Patience pays.";
    let harness = Harness::start(text_stream(ANSWER, 4, 5)).await;
    let api = &harness.api;
    let retry = "Too Many Requests: retry after 1";
    api.fail_next("getUpdates", 429, retry, Some(1));
    api.fail_next("sendMessage", 429, retry, Some(1));
    let bot = harness.bot(&[]);
    let chat = 5001;
    harness.exchange(chat, "hello", ANSWER).await;

    let polls: Vec<Call> = api
        .calls()
        .into_iter()
        .filter(|c| c.method == "getUpdates")
        .collect();
    assert_eq!(polls[0].error_code, Some(429));
    assert!(
        polls[1].at - polls[0].at >= Duration::from_secs(1),
        "polled again {:?} after a 429 asking for 1 s",
        polls[1].at - polls[0].at
    );
    let sends = api.calls_to("sendMessage", chat);
    assert_eq!(sends[0].error_code, Some(429));
    assert!(sends[1].ok);
    // Nothing at all was written to the chat before retry_after passed.
    for call in api.calls().iter().filter(|c| c.chat_id() == Some(chat)) {
        if call.at > sends[0].at && call.method != "sendChatAction" {
            assert!(
                call.at - sends[0].at >= Duration::from_secs(1),
                "{} {:?} after the 429",
                call.method,
                call.at - sends[0].at
            );
        }
    }

    // ok:false is logged with its description, and the bot carries on.
    api.fail_next(
        "sendMessage",
        403,
        "Forbidden: bot was blocked by the user",
        None,
    );
    let asked = api.user_says(chat, "are you there?");
    wait_until("the refused send", || {
        std::future::ready(
            api.calls_to("sendMessage", chat)
                .iter()
                .any(|c| c.error_code == Some(403)),
        )
    })
    .await;
    assert!(api.replies_to(chat, asked).is_empty());
    harness.exchange(chat, "and now?", ANSWER).await;
    let log = bot.log();
    assert!(log.contains("bot was blocked by the user"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_shown_while_answering_and_start_and_model_answer() {
    // 30 pieces 150 ms apart: 4.5 s, past the 4 s after which typing is sent again.
    let answer: String = (0..30).map(|n| format!("t{n} ")).collect();
    let harness = Harness::start(text_stream(&answer, 3, 150)).await;
    let _bot = harness.bot(&[]);
    let api = &harness.api;
    let chat = 6001;

    let asked = api.user_says(chat, "/start");
    let start = harness.replies(chat, asked, |t| t.contains("Hello")).await;
    assert!(start[0].text.contains(MODEL), "{}", start[0].text);

    let asked = api.user_says(chat, "/model");
    let listed = harness.replies(chat, asked, |t| t.contains("Models")).await;
    assert!(
        listed[0].text.contains(&format!("This chat uses {MODEL}"))
            && listed[0].text.contains(&format!("• {MODEL}")),
        "{}",
        listed[0].text
    );
    let asked = api.user_says(chat, "/model no-such-model");
    let refused = harness.replies(chat, asked, |t| !t.is_empty()).await;
    assert!(
        refused[0]
            .text
            .contains("There is no model “no-such-model”"),
        "{}",
        refused[0].text
    );
    let asked = api.user_says(chat, &format!("/model@cocoon_test_bot {MODEL}"));
    let switched = harness.replies(chat, asked, |t| !t.is_empty()).await;
    assert_eq!(switched[0].text, format!("This chat now uses {MODEL}."));

    let typing_before = api.calls_to("sendChatAction", chat).len();
    assert_eq!(typing_before, 0, "commands answer without typing");
    let asked = api.user_says(chat, "count slowly");
    harness.replies(chat, asked, |t| t == answer).await;
    let typing = api.calls_to("sendChatAction", chat);
    assert!(typing.len() >= 2, "typing was sent {} times", typing.len());
    assert!(typing.iter().all(|c| c.params["action"] == "typing"));
    let sends = api.calls_to("sendMessage", chat);
    let first_write = sends.last().expect("the answer was sent");
    assert!(
        typing[0].at <= first_write.at,
        "typing is shown before the answer starts"
    );
    assert_eq!(harness.backend.bodies()[0]["model"], MODEL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_are_told_clearly_when_the_model_or_the_network_is_missing() {
    let harness = Harness::start(text_stream("unused", 4, 5)).await;
    // A model the network does not have.
    let _bot = harness.bot(&["--model", "no-such-model"]);
    let asked = harness.api.user_says(7001, "hello");
    let replies = harness.replies(7001, asked, |t| !t.is_empty()).await;
    assert!(
        replies[0].text.contains("“no-such-model” does not exist"),
        "{}",
        replies[0].text
    );

    // A client API that is down (nothing listens there).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let api = FakeBotApi::start(TOKEN).await.unwrap();
    let _down = BotProcess::start(&api.url(), &closed_url, &[], harness.dir.path());
    for (text, expected) in [
        ("hello", "cannot be reached"),
        ("/model", "The list of models cannot be read"),
    ] {
        let asked = api.user_says(7002, text);
        wait_until("the bot's reply", || {
            std::future::ready(
                api.replies_to(7002, asked)
                    .iter()
                    .any(|m| m.text.contains(expected)),
            )
        })
        .await;
    }
    assert!(harness.backend.bodies().is_empty());
}

#[test]
fn a_missing_or_malformed_token_is_refused_without_echoing_it() {
    let run = |env: Option<&str>, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cocoon"));
        command
            .args(["telegram-bot", "--api-url", "http://127.0.0.1:9"])
            .args(args)
            .env_remove("COCOON_TELEGRAM_TOKEN")
            .env("COCOON_LOG", "error");
        if let Some(token) = env {
            command.env("COCOON_TELEGRAM_TOKEN", token);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(run(None, &[]).contains("no bot token"));
    let error = run(Some("12:hidden/../value"), &[]);
    assert!(
        error.contains("bot token") && !error.contains("hidden"),
        "{error}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "1:abc\n").unwrap();
    let error = run(Some("1:abc"), &["--token-file", file.to_str().unwrap()]);
    assert!(error.contains("given twice"), "{error}");

    // The help names every bound, and never shows the token's value.
    let help = Command::new(env!("CARGO_BIN_EXE_cocoon"))
        .args(["telegram-bot", "--help"])
        .env("COCOON_TELEGRAM_TOKEN", "1:visible-secret")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--token-file",
        "--history-messages",
        "--history-chars",
        "--max-chats",
        "--edit-interval-ms",
        "COCOON_TELEGRAM_TOKEN",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(!help.contains("visible-secret"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_bot_api_refuses_stops_the_bot_with_a_clear_error() {
    let api = FakeBotApi::start("999:another-bots-token").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut bot = BotProcess::start(&api.url(), "http://127.0.0.1:9/v1", &[], dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = bot.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the bot kept running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success());
    let log = bot.log();
    assert!(log.contains("refused the bot token"), "{log}");
    assert!(!log.contains("secret_token"), "{log}");
    assert_eq!(api.calls()[0].method, "getMe");
}
