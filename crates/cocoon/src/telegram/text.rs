//! Text as Telegram counts it: lengths in UTF-16 code units (what the Bot API's 4,096-character
//! limit counts), answers split into messages under that limit at paragraph, line or word
//! boundaries, and peer text made safe for a log line.

/// The most UTF-16 code units in one message's text (Bot API: "1-4096 characters after entities
/// parsing"; the bot sends plain text, so there are no entities to parse).
pub const MESSAGE_LIMIT: usize = 4096;

/// The most characters of a peer's text (a Bot API error description, a model name) that reach
/// a log line or a chat.
const PEER_TEXT_MAX_CHARS: usize = 200;

/// Length in UTF-16 code units: a character outside the Basic Multilingual Plane (most emoji)
/// counts two, as in Telegram.
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Byte index where the longest prefix of `text` of at most `limit` UTF-16 units ends.
fn prefix_end(text: &str, limit: usize) -> usize {
    let mut units = 0;
    for (index, c) in text.char_indices() {
        units += c.len_utf16();
        if units > limit {
            return index;
        }
    }
    text.len()
}

/// Splits `text` into pages of at most `limit` UTF-16 units whose concatenation is `text`.
/// Each page but the last ends at the last paragraph break (blank line) of its window, else
/// the last line break, else the last whitespace, provided that keeps it at least half full;
/// otherwise it is cut at a character boundary. Separators stay at the end of the page before.
///
/// Pages are stable as the text grows: a page other than the last depends only on the first
/// `limit` units from its start, so a streamed answer's earlier pages never change.
pub fn split_pages(text: &str, limit: usize) -> Vec<&str> {
    let mut pages = Vec::new();
    let mut rest = text;
    while utf16_len(rest) > limit {
        let mut end = prefix_end(rest, limit);
        if end == 0 {
            // A limit below one character's width: take the character anyway, or we would
            // never progress (the real limit is 4,096).
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let cut = best_cut(&rest[..end]);
        pages.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        pages.push(rest);
    }
    pages
}

/// Where to end a page whose window (the most text that fits) is `window`.
fn best_cut(window: &str) -> usize {
    // Pages shorter than half a window would multiply messages for little gain in readability.
    let floor = window.len() / 2;
    for separator in ["\n\n", "\n"] {
        if let Some(index) = window.rfind(separator) {
            let cut = index + separator.len();
            if cut > floor {
                return cut;
            }
        }
    }
    if let Some((index, c)) = window.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
        let cut = index + c.len_utf8();
        if cut > floor {
            return cut;
        }
    }
    window.len()
}

/// The first `max_chars` characters of `text`.
pub fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

/// A peer's text as it may appear in a log line or a chat: control characters escaped (a
/// newline cannot forge a log line) and at most 200 characters, a cut marked with `…`.
pub fn peer_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(PEER_TEXT_MAX_CHARS * 2));
    for (index, c) in text.chars().enumerate() {
        if index == PEER_TEXT_MAX_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, limit: usize) -> Vec<&str> {
        let pages = split_pages(text, limit);
        assert_eq!(pages.concat(), text);
        for page in &pages {
            assert!(utf16_len(page) <= limit, "{page:?} is over {limit}");
            assert!(!page.is_empty());
        }
        pages
    }

    #[test]
    fn emoji_count_two_units_as_in_telegram() {
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("é"), 1);
        assert_eq!(utf16_len("😀"), 2);
        assert_eq!(utf16_len("a😀b"), 4);
    }

    #[test]
    fn short_text_is_one_page_and_empty_text_none() {
        assert_eq!(check("hello", 10), vec!["hello"]);
        assert_eq!(check("", 10), Vec::<&str>::new());
        assert_eq!(check("0123456789", 10), vec!["0123456789"]);
    }

    #[test]
    fn pages_end_at_paragraphs_then_lines_then_words() {
        let text = "para one line\n\npara two is here";
        assert_eq!(
            check(text, 20),
            vec!["para one line\n\n", "para two is here"]
        );
        let text = "line one here\nline two is here";
        assert_eq!(check(text, 20), vec!["line one here\n", "line two is here"]);
        let text = "words words words words";
        assert_eq!(check(text, 20), vec!["words words words ", "words"]);
        // A paragraph break too early (under half the window) loses to a later line break.
        let text = "ab\n\ncdefghijkl\nmnopqrstuvwxyz";
        assert_eq!(
            check(text, 20),
            vec!["ab\n\ncdefghijkl\n", "mnopqrstuvwxyz"]
        );
    }

    #[test]
    fn text_without_spaces_is_cut_at_a_character_boundary() {
        let text = "😀".repeat(15);
        let pages = check(&text, 11);
        // Five emoji (10 units) fit; a sixth would make 12.
        assert_eq!(pages[0], "😀".repeat(5));
        assert_eq!(pages.len(), 3);
        // A limit under one character's width still progresses, a character per page.
        assert_eq!(split_pages("😀😀", 1), vec!["😀", "😀"]);
    }

    #[test]
    fn long_answers_split_under_the_telegram_limit() {
        let mut text = String::new();
        for n in 0..400 {
            text.push_str(&format!(
                "Paragraph {n}: some words, and an emoji 🚀 or two 🎉.\n"
            ));
            if n % 7 == 0 {
                text.push('\n');
            }
        }
        let pages = check(&text, MESSAGE_LIMIT);
        assert!(pages.len() >= 5, "{}", pages.len());
        for page in &pages[..pages.len() - 1] {
            assert!(page.ends_with('\n'), "pages end at line breaks");
        }
    }

    #[test]
    fn earlier_pages_do_not_change_as_the_text_grows() {
        let text = "one two three four five six seven eight nine ten eleven twelve ".repeat(30);
        let full = split_pages(&text, 50);
        for end in (0..text.len()).filter(|i| text.is_char_boundary(*i)) {
            let partial = split_pages(&text[..end], 50);
            let settled = partial.len().saturating_sub(1);
            assert_eq!(partial[..settled], full[..settled], "at {end}");
        }
    }

    #[test]
    fn truncation_and_peer_text() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hé", 5), "hé");
        assert_eq!(peer_text("a\nb\u{1b}"), "a\\nb\\u{1b}");
        assert_eq!(peer_text(&"x".repeat(300)), format!("{}…", "x".repeat(200)));
    }
}
