//! Writing a text into a chat as it grows: the text is cut into pages of at most 4,096 UTF-16
//! units ([`split_pages`]), each page shown by one message, sent when the page first has
//! something to show and edited as it grows. One Bot API call per step, and steps paced: a
//! chat's messages are written at most once per `interval`, counted from the end of the call
//! before, so Telegram sees the pace even if a call was slow.

use std::time::Duration;

use tokio::time::Instant;

use super::botapi::{BotApi, BotApiError};
use super::text::{split_pages, MESSAGE_LIMIT};

/// The longest 429 delay a message waits out before it gives up (the gate keeps holding the
/// chat either way).
const MAX_FLOOD_WAIT: Duration = Duration::from_secs(60);

/// A chat's messages for one text.
pub struct ChatWriter<'a> {
    api: &'a BotApi,
    chat: i64,
    interval: Duration,
    last_write: Option<Instant>,
    /// The messages written, in order, and the text each shows.
    shown: Vec<(i64, String)>,
    /// Calls made: sends and edits.
    pub sends: usize,
    /// Edits made.
    pub edits: usize,
}

/// The pages of `text` that can be shown: Telegram refuses a message of whitespace alone. Pages
/// before the last never change as the text grows, so a page dropped there stays dropped and
/// the visible pages keep their places.
fn visible_pages(text: &str) -> impl Iterator<Item = &str> {
    split_pages(text, MESSAGE_LIMIT)
        .into_iter()
        .filter(|page| !page.trim().is_empty())
}

impl<'a> ChatWriter<'a> {
    /// A writer for `chat`, whose last write (if any) was at `last_write`.
    pub fn new(
        api: &'a BotApi,
        chat: i64,
        interval: Duration,
        last_write: Option<Instant>,
    ) -> ChatWriter<'a> {
        ChatWriter {
            api,
            chat,
            interval,
            last_write,
            shown: Vec::new(),
            sends: 0,
            edits: 0,
        }
    }

    /// When the next write may be made.
    pub fn next_write_at(&self) -> Instant {
        self.last_write
            .map_or_else(Instant::now, |last| last + self.interval)
    }

    /// When the last write ended.
    pub fn last_write(&self) -> Option<Instant> {
        self.last_write
    }

    /// Messages written.
    pub fn messages(&self) -> usize {
        self.shown.len()
    }

    /// One step towards showing `text`: waits for the pace, then edits the first message that
    /// shows less than its page, or sends the next page. Returns false when everything is
    /// shown already (and nothing was called).
    pub async fn step(&mut self, text: &str) -> Result<bool, BotApiError> {
        for (index, page) in visible_pages(text).enumerate() {
            match self.shown.get(index) {
                Some((_, shown)) if shown == page => continue,
                Some((message_id, _)) => {
                    let message_id = *message_id;
                    tokio::time::sleep_until(self.next_write_at()).await;
                    let result = self
                        .api
                        .edit_message_text(self.chat, message_id, page, MAX_FLOOD_WAIT)
                        .await;
                    self.last_write = Some(Instant::now());
                    result?;
                    self.edits += 1;
                    self.shown[index].1 = page.to_owned();
                    return Ok(true);
                }
                None => {
                    tokio::time::sleep_until(self.next_write_at()).await;
                    let result = self.api.send_message(self.chat, page, MAX_FLOOD_WAIT).await;
                    self.last_write = Some(Instant::now());
                    let message_id = result?;
                    self.sends += 1;
                    self.shown.push((message_id, page.to_owned()));
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Steps until `text` is shown in full.
    pub async fn finish(&mut self, text: &str) -> Result<(), BotApiError> {
        while self.step(text).await? {}
        Ok(())
    }
}
