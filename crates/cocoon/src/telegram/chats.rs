//! The bot's memory of its chats: per chat a bounded history, the model chosen with `/model`,
//! and a short queue of what the chat sent while its answer was being written. At most
//! `max_chats` chats are kept; the least recently used idle one is forgotten to make room.

use std::collections::{BTreeMap, HashMap, VecDeque};

use tokio::time::Instant;

use super::completion::Turn;
use super::text::truncate_chars;

/// What a chat asked for, in the order it asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A message for the model.
    Text(String),
    /// `/start` or `/help`.
    Start,
    /// `/reset`.
    Reset,
    /// `/model`, or `/model NAME`.
    Model(Option<String>),
    /// Something to tell the chat (a refusal), in order with the answers.
    Notice(String),
}

/// Bounds of one chat's history.
#[derive(Clone, Copy, Debug)]
pub struct HistoryBounds {
    /// Messages kept (user and assistant together).
    pub messages: usize,
    /// Characters kept, over all messages.
    pub chars: usize,
}

/// A conversation, oldest first, within its bounds.
#[derive(Debug, Default)]
pub struct History {
    turns: VecDeque<Turn>,
    /// Characters in `turns`.
    chars: usize,
}

impl History {
    /// Appends a turn (cut to the character bound if it alone is over it), then forgets the
    /// oldest until both bounds hold. The history never starts with an answer whose question
    /// was forgotten.
    pub fn push(&mut self, role: &'static str, text: &str, bounds: HistoryBounds) {
        let text = truncate_chars(text, bounds.chars);
        self.chars += text.chars().count();
        self.turns.push_back(Turn {
            role,
            text: text.to_owned(),
        });
        while self.turns.len() > bounds.messages
            || self.chars > bounds.chars
            || self.turns.front().is_some_and(|t| t.role == "assistant")
        {
            match self.turns.pop_front() {
                Some(turn) => self.chars -= turn.text.chars().count(),
                None => break,
            }
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.turns.clear();
        self.chars = 0;
    }

    /// The turns, oldest first.
    pub fn turns(&self) -> impl Iterator<Item = &Turn> {
        self.turns.iter()
    }

    /// Characters held.
    #[cfg(test)]
    pub fn chars(&self) -> usize {
        self.chars
    }
}

/// One chat's state.
#[derive(Debug)]
pub struct ChatState {
    /// The conversation.
    pub history: History,
    /// The model chosen with `/model NAME`, if any.
    pub model: Option<String>,
    /// When the bot last wrote an answer's message here (edits are paced from it).
    pub last_write: Option<Instant>,
    pending: VecDeque<Input>,
    /// A task is serving this chat's inputs.
    busy: bool,
    /// The chat was told its queue is full, since the queue last emptied.
    told_full: bool,
    /// Key in `Chats::by_use`.
    used: u64,
}

/// What became of an input.
#[derive(Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// The chat was idle: start a task serving it, with this input first.
    Serve(Input),
    /// Queued behind the chat's running answer.
    Queued,
    /// The chat's queue is full; `tell` is whether to say so (once per busy spell).
    Full {
        /// Say so.
        tell: bool,
    },
    /// Every chat kept is busy: no room for a new one.
    NoRoom,
}

/// Every chat the bot keeps.
#[derive(Debug)]
pub struct Chats {
    chats: HashMap<i64, ChatState>,
    /// Chats by last use, oldest first.
    by_use: BTreeMap<u64, i64>,
    next_use: u64,
    max_chats: usize,
    max_queued: usize,
}

impl Chats {
    /// At most `max_chats` chats, each queueing at most `max_queued` inputs behind its
    /// running one.
    pub fn new(max_chats: usize, max_queued: usize) -> Chats {
        Chats {
            chats: HashMap::new(),
            by_use: BTreeMap::new(),
            next_use: 0,
            max_chats: max_chats.max(1),
            max_queued,
        }
    }

    /// Chats kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.chats.len()
    }

    /// Marks `chat` used now.
    fn touch(&mut self, chat: i64) {
        let now = self.next_use;
        self.next_use += 1;
        if let Some(state) = self.chats.get_mut(&chat) {
            self.by_use.remove(&state.used);
            state.used = now;
            self.by_use.insert(now, chat);
        }
    }

    /// Makes room for one more chat by forgetting the least recently used idle one; false if
    /// every chat is busy.
    fn make_room(&mut self) -> bool {
        if self.chats.len() < self.max_chats {
            return true;
        }
        let idle = self
            .by_use
            .iter()
            .find(|(_, chat)| self.chats.get(chat).is_some_and(|state| !state.busy))
            .map(|(used, chat)| (*used, *chat));
        match idle {
            Some((used, chat)) => {
                self.by_use.remove(&used);
                self.chats.remove(&chat);
                tracing::debug!(chat, "forgot the least recently used chat to make room");
                true
            }
            None => false,
        }
    }

    /// Takes `input` for `chat`.
    pub fn enqueue(&mut self, chat: i64, input: Input) -> Enqueued {
        if !self.chats.contains_key(&chat) {
            if !self.make_room() {
                return Enqueued::NoRoom;
            }
            self.chats.insert(
                chat,
                ChatState {
                    history: History::default(),
                    model: None,
                    last_write: None,
                    pending: VecDeque::new(),
                    busy: false,
                    told_full: false,
                    used: 0,
                },
            );
        }
        self.touch(chat);
        let max_queued = self.max_queued;
        let Some(state) = self.chats.get_mut(&chat) else {
            return Enqueued::NoRoom; // inserted above
        };
        if !state.busy {
            state.busy = true;
            return Enqueued::Serve(input);
        }
        if state.pending.len() < max_queued {
            state.pending.push_back(input);
            return Enqueued::Queued;
        }
        let tell = !state.told_full;
        state.told_full = true;
        Enqueued::Full { tell }
    }

    /// The chat's next input, for the task serving it (after the one it started with);
    /// `None` marks the chat idle (the task ends, and the next input starts a new one).
    pub fn next_input(&mut self, chat: i64) -> Option<Input> {
        let state = self.chats.get_mut(&chat)?;
        let input = state.pending.pop_front();
        if input.is_none() {
            state.busy = false;
            state.told_full = false;
        }
        input
    }

    /// The chat's state (a busy chat is never forgotten, so its task finds it).
    pub fn chat(&mut self, chat: i64) -> Option<&mut ChatState> {
        self.chats.get_mut(&chat)
    }

    /// The chat's conversation as turns for the API.
    pub fn turns(&self, chat: i64) -> Vec<Turn> {
        self.chats
            .get(&chat)
            .map(|state| state.history.turns().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: HistoryBounds = HistoryBounds {
        messages: 4,
        chars: 20,
    };

    fn texts(history: &History) -> Vec<&str> {
        history.turns().map(|t| t.text.as_str()).collect()
    }

    #[test]
    fn history_keeps_to_its_message_bound() {
        let mut history = History::default();
        for n in 0..3 {
            history.push("user", &format!("q{n}"), BOUNDS);
            history.push("assistant", &format!("a{n}"), BOUNDS);
        }
        assert_eq!(texts(&history), ["q1", "a1", "q2", "a2"]);
        assert_eq!(history.chars(), 8);
    }

    #[test]
    fn history_keeps_to_its_character_bound_and_starts_with_a_question() {
        let mut history = History::default();
        history.push("user", "0123456789", BOUNDS);
        history.push("assistant", "012345", BOUNDS);
        history.push("user", "0123", BOUNDS);
        // 20 characters would be over with the next question: the oldest pair goes.
        history.push("assistant", "0", BOUNDS);
        assert_eq!(texts(&history), ["0123", "0"]);
        // One turn longer than the bound is cut to it, and alone.
        history.push("user", &"x".repeat(50), BOUNDS);
        assert_eq!(texts(&history), ["x".repeat(20)]);
        assert_eq!(history.chars(), 20);
        history.clear();
        assert_eq!(history.chars(), 0);
    }

    #[test]
    fn one_input_runs_per_chat_and_the_queue_is_bounded() {
        let mut chats = Chats::new(10, 2);
        let text = Input::Text("a".into());
        assert_eq!(chats.enqueue(1, text.clone()), Enqueued::Serve(text));
        assert_eq!(
            chats.enqueue(2, Input::Start),
            Enqueued::Serve(Input::Start)
        );
        assert_eq!(chats.enqueue(1, Input::Reset), Enqueued::Queued);
        assert_eq!(chats.enqueue(1, Input::Start), Enqueued::Queued);
        assert_eq!(
            chats.enqueue(1, Input::Start),
            Enqueued::Full { tell: true }
        );
        assert_eq!(
            chats.enqueue(1, Input::Start),
            Enqueued::Full { tell: false }
        );
        assert_eq!(chats.next_input(1), Some(Input::Reset));
        assert_eq!(chats.next_input(1), Some(Input::Start));
        assert_eq!(chats.next_input(1), None);
        // Idle again: the next input starts a new task, and a full queue is told again.
        assert_eq!(
            chats.enqueue(1, Input::Start),
            Enqueued::Serve(Input::Start)
        );
        assert_eq!(chats.enqueue(1, Input::Start), Enqueued::Queued);
        assert_eq!(chats.enqueue(1, Input::Start), Enqueued::Queued);
        assert_eq!(
            chats.enqueue(1, Input::Start),
            Enqueued::Full { tell: true }
        );
    }

    #[test]
    fn the_least_recently_used_idle_chat_is_forgotten() {
        let mut chats = Chats::new(2, 1);
        assert_eq!(
            chats.enqueue(1, Input::Start),
            Enqueued::Serve(Input::Start)
        );
        assert_eq!(
            chats.enqueue(2, Input::Start),
            Enqueued::Serve(Input::Start)
        );
        // Both busy: no room for a third.
        assert_eq!(chats.enqueue(3, Input::Start), Enqueued::NoRoom);
        assert_eq!(chats.next_input(1), None); // chat 1 idle
        assert_eq!(chats.next_input(2), None); // chat 2 idle
        chats.chat(1).unwrap().history.push("user", "kept?", BOUNDS);
        chats.enqueue(1, Input::Start); // chat 1 used last
        assert_eq!(
            chats.enqueue(3, Input::Start),
            Enqueued::Serve(Input::Start)
        );
        assert_eq!(chats.len(), 2);
        assert!(
            chats.chat(2).is_none(),
            "chat 2 was the least recently used"
        );
        assert_eq!(chats.turns(1).len(), 1);
    }
}
