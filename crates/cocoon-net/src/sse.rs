//! Server-sent events: where one event ends in a byte stream.

/// The end of the first complete event in `data`: (where it ends, the length of the blank-line
/// separator after it). Events end with a blank line; backends use "\n\n", the spec also allows
/// "\r\n\r\n". Searching for the newline with SIMD (memchr) keeps this off the profile.
#[inline]
pub fn find_event_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(offset) = memchr::memchr(b'\n', &data[from..]) {
        let i = from + offset;
        match (data.get(i + 1), data.get(i + 2)) {
            (Some(b'\n'), _) => return Some((i, 2)),
            (Some(b'\r'), Some(b'\n')) => return Some((i, 3)),
            (None, _) => return None,
            _ => from = i + 1,
        }
    }
    None
}

/// Takes the first complete event out of `pending` (without its blank line), if there is one.
pub fn take_event(pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    let (end, separator) = find_event_end(pending)?;
    Some(pending.drain(..end + separator).take(end).collect())
}

/// An event's data: its `data:` lines joined with newlines, each without the one space after
/// the colon and without a trailing carriage return. Empty for an event that carries none.
pub fn event_data(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim_end_matches('\r').strip_prefix("data:"))
        .map(|data| data.strip_prefix(' ').unwrap_or(data))
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::{event_data, find_event_end, take_event};

    #[test]
    fn events_come_out_one_by_one_with_their_data() {
        let mut pending = b"event: x\ndata: {\"a\":1}\r\n\r\ndata: [DONE]\n\ndata: par".to_vec();
        let first = take_event(&mut pending).unwrap();
        assert_eq!(event_data(&first), "{\"a\":1}");
        assert_eq!(event_data(&take_event(&mut pending).unwrap()), "[DONE]");
        assert_eq!(take_event(&mut pending), None);
        assert_eq!(pending, b"data: par");
        assert_eq!(event_data(b"data:x\ndata: y"), "x\ny");
        assert_eq!(event_data(b": comment"), "");
    }

    #[test]
    fn events_end_at_a_blank_line_of_either_kind() {
        assert_eq!(find_event_end(b"data: a\n\ndata: b"), Some((7, 2)));
        assert_eq!(find_event_end(b"data: a\r\n\r\n"), Some((8, 3)));
        assert_eq!(find_event_end(b"data: a\nid: 1\n"), None);
        assert_eq!(find_event_end(b"data: a\n"), None);
        assert_eq!(find_event_end(b""), None);
    }
}
