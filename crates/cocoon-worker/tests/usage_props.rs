//! Property tests for the SSE usage tracker: whatever a backend sends and however TCP splits
//! it, the tracker never panics and its output does not depend on the split.

use cocoon_worker::usage::SseUsageTracker;
use proptest::prelude::*;

fn run(chunks: &[&[u8]], strip: bool) -> (Vec<u8>, Option<i64>, u64) {
    let mut tracker = SseUsageTracker::new(strip, None);
    let mut out = Vec::new();
    for chunk in chunks {
        tracker.push(chunk, &mut out);
    }
    tracker.finish(&mut out);
    (
        out,
        tracker.usage().map(|u| u.total_tokens_used),
        tracker.events(),
    )
}

fn event() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,20}".prop_map(|t| format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{t}\"}}}}]}}\n\n")),
        (0i64..1000, 0i64..1000).prop_map(|(p, c)| format!(
            "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":{p},\"completion_tokens\":{c},\"total_tokens\":{}}}}}\n\n",
            p + c
        )),
        Just(": keep-alive comment\n\n".to_string()),
        Just("data: [DONE]\n\n".to_string()),
        Just("event: ping\r\ndata: {}\r\n\r\n".to_string()),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096), cut in 0usize..4096, strip in any::<bool>()) {
        let cut = cut.min(data.len());
        let (out, _, _) = run(&[&data[..cut], &data[cut..]], strip);
        if !strip {
            prop_assert_eq!(out, data, "without stripping the bytes pass through unchanged");
        }
    }

    #[test]
    fn output_is_independent_of_splits(events in proptest::collection::vec(event(), 0..20), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8), strip in any::<bool>()) {
        let stream: Vec<u8> = events.concat().into_bytes();
        let whole = run(&[&stream], strip);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for point in points {
            chunks.push(&stream[last..point]);
            last = point;
        }
        chunks.push(&stream[last..]);
        let split = run(&chunks, strip);
        prop_assert_eq!(&split, &whole);
        prop_assert_eq!(whole.2, events.len() as u64);
        let usage_events: Vec<&String> = events.iter().filter(|e| e.contains("\"usage\"")).collect();
        if let Some(last_usage) = usage_events.last() {
            let value: serde_json::Value = serde_json::from_str(last_usage.trim().trim_start_matches("data: ")).unwrap();
            prop_assert_eq!(whole.1, value["usage"]["total_tokens"].as_i64());
        } else {
            prop_assert_eq!(whole.1, None);
        }
        let kept: String = events.iter().filter(|e| !(strip && e.contains("\"usage\""))).cloned().collect();
        prop_assert_eq!(whole.0, kept.into_bytes());
    }
}
