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

#[cfg(test)]
mod tests {
    use super::find_event_end;

    #[test]
    fn events_end_at_a_blank_line_of_either_kind() {
        assert_eq!(find_event_end(b"data: a\n\ndata: b"), Some((7, 2)));
        assert_eq!(find_event_end(b"data: a\r\n\r\n"), Some((8, 3)));
        assert_eq!(find_event_end(b"data: a\nid: 1\n"), None);
        assert_eq!(find_event_end(b"data: a\n"), None);
        assert_eq!(find_event_end(b""), None);
    }
}
