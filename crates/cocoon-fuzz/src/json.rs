//! Targets for JSON from apps and backends: the worker's SSE usage tracking and usage bodies,
//! the request bodies it validates, the prompt estimate.

use cocoon_proto::Multipliers;
use cocoon_worker::usage::{self, Pricing, SseUsageTracker};
use cocoon_worker::validate::{validate_request, Endpoint};

const PRICING: Pricing = Pricing {
    coefficient: 1500,
    multipliers: Multipliers::ONE,
    price_per_token: 20,
};

/// Runs a tracker over `pieces`, returning its output, usage and event count.
fn track(pieces: &[&[u8]], strip: bool) -> (Vec<u8>, Option<cocoon_proto::TokensUsed>, u64) {
    let mut tracker = SseUsageTracker::new(strip, Some(PRICING));
    let mut out = Vec::new();
    for piece in pieces {
        tracker.push(piece, &mut out);
    }
    tracker.finish(&mut out);
    let _ = tracker.estimate(pieces.iter().map(|piece| piece.len()).sum());
    (out, tracker.usage(), tracker.events())
}

/// A backend's event stream as the worker relays it, in pieces: what it passes on and the usage
/// it bills must not depend on how the bytes were split. Also the stream read as one JSON answer.
pub(crate) fn sse_usage(data: &[u8]) {
    let (pieces, whole) = crate::pieces(data);
    let strip = data.first().is_some_and(|first| first & 1 == 1);
    let split = track(&pieces, strip);
    let at_once = track(&[whole], strip);
    assert!(
        split == at_once,
        "SSE tracking depends on how the bytes are split"
    );
    let _ = usage::tokens_from_json_body(whole);
    let _ = PRICING.annotate_body(whole);
}

/// A request body as the worker's allow-list checks it for each endpoint, and the prompt
/// estimate the client and proxy take of it.
pub(crate) fn json_request(data: &[u8]) {
    for endpoint in [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
    ] {
        // What passed the allow-list is what the backend gets: it must pass again, unchanged.
        if let Ok(request) = validate_request(endpoint, data) {
            let again = validate_request(endpoint, &request.body)
                .unwrap_or_else(|error| panic!("a validated body is refused: {error}"));
            assert!(
                again.model == request.model && again.stream == request.stream,
                "validating a validated body changes it"
            );
        }
    }
    let _ = cocoon_proto::estimate::prompt_estimate(data);
    // What the client's API reads from an app (any web page can POST to it): what it forwards
    // it would forward again unchanged (its extras are gone). (Not "strict JSON": the probe
    // skips the fields it does not read without checking their escapes, so a lone surrogate
    // there is forwarded and the worker refuses it.)
    if let Ok(forwarded) = cocoon_client::fuzzing::app_body(data) {
        let again = cocoon_client::fuzzing::app_body(&forwarded)
            .unwrap_or_else(|error| panic!("a forwarded body is refused: {error}"));
        assert!(again == forwarded, "reading a forwarded body changes it");
    }
    // A Responses request becomes a chat completion request: an object with messages.
    if let Ok((chat, _stream)) = cocoon_client::fuzzing::responses_body(data) {
        assert!(
            chat.get("messages")
                .is_some_and(serde_json::Value::is_array),
            "a translated Responses request has no messages"
        );
    }
}
