//! Targets for `cocoon-proto`: the TL messages each hop reads, framing, the session and PoW.

use cocoon_proto::frame::{FrameDecoder, FrameEncoder, FrameError};
use cocoon_proto::pow::{PowChallenge, PowResponse};
use cocoon_proto::session::{Session, SessionConfig};
use cocoon_proto::*;

/// Decodes `data` as `T`; on success the re-encoding must decode again and encode to the same
/// bytes (a value that changes when written and read back is a mis-decode).
pub(crate) fn tl_round_trip<T: TlBoxed>(data: &[u8]) -> Option<T> {
    let value = T::from_bytes(data).ok()?;
    let bytes = value.to_bytes();
    let again = T::from_bytes(&bytes).unwrap_or_else(|error| {
        panic!(
            "{}: its own encoding does not decode: {error}",
            std::any::type_name::<T>()
        )
    });
    assert!(
        again.to_bytes() == bytes,
        "{}: encoding is not stable across a decode",
        std::any::type_name::<T>()
    );
    Some(value)
}

/// An `http.request` or `http.response` carried inside a query, read as the proxy and worker
/// read it (including the prompt estimate of its JSON payload).
fn http_payload(data: &[u8]) {
    if let Some(request) = tl_round_trip::<HttpRequest>(data) {
        let _ = cocoon_proto::estimate::prompt_estimate(&request.payload);
    }
    let _ = tl_round_trip::<HttpResponse>(data);
}

/// Client ⇄ proxy: what the proxy accepts from a client and what the client accepts back.
pub(crate) fn client_proxy(data: &[u8]) {
    let _ = tl_round_trip::<ClientToProxyQuery>(data);
    let _ = tl_round_trip::<ClientToProxyPacket>(data);
    let _ = tl_round_trip::<ProxyToClientMessage>(data);
    let _ = tl_round_trip::<ClientConnectToProxy>(data);
    let _ = tl_round_trip::<ClientConnectedToProxy>(data);
    let _ = tl_round_trip::<AuthorizationWithProxy>(data);
    let _ = tl_round_trip::<ClientWorkerTypesV2>(data);
    let _ = tl_round_trip::<ClientSealingWorkers>(data);
    let _ = tl_round_trip::<ClientGetSealingWorkers>(data);
    let _ = tl_round_trip::<ClientRunSealedQuery>(data);
    if let Some(run) = tl_round_trip::<ClientRunQueryEx>(data) {
        http_payload(&run.query);
    }
    if let Some(ClientQueryAnswer::Answer(answer)) = tl_round_trip::<ClientQueryAnswer>(data) {
        http_payload(&answer.answer);
    }
    let _ = tl_round_trip::<ClientPaymentStatus>(data);
    let _ = tl_round_trip::<ClientRefundAnswer>(data);
}

/// Proxy ⇄ worker: what the worker accepts from a proxy and what the proxy accepts back.
pub(crate) fn proxy_worker(data: &[u8]) {
    let _ = tl_round_trip::<ProxyToWorkerMessage>(data);
    let _ = tl_round_trip::<WorkerToProxyQuery>(data);
    let _ = tl_round_trip::<WorkerToProxyMessage>(data);
    let _ = tl_round_trip::<WorkerConnectToProxy>(data);
    let _ = tl_round_trip::<WorkerConnectedToProxy>(data);
    let _ = tl_round_trip::<WorkerProxyHandshakeComplete>(data);
    let _ = tl_round_trip::<WorkerProxyHandshakeCompleted>(data);
    let _ = tl_round_trip::<WorkerCompareBalanceWithProxy>(data);
    let _ = tl_round_trip::<WorkerCompareBalanceWithProxyResult>(data);
    let _ = tl_round_trip::<WorkerExtendedCompareBalanceWithProxy>(data);
    let _ = tl_round_trip::<WorkerExtendedCompareBalanceWithProxyResult>(data);
    let _ = tl_round_trip::<WorkerPaymentStatus>(data);
    let _ = tl_round_trip::<WorkerEnabledDisabled>(data);
    let _ = tl_round_trip::<WorkerNewCoefficient>(data);
    if let Some(run) = tl_round_trip::<ProxyRunQueryEx>(data) {
        http_payload(&run.query);
    }
    let _ = tl_round_trip::<ProxyRunSealedQuery>(data);
    let _ = tl_round_trip::<ProxyQueryAnswer>(data);
    let _ = tl_round_trip::<ProxyCancelQuery>(data);
    let _ = tl_round_trip::<ProxyClientRequestPayment>(data);
    let _ = tl_round_trip::<ProxyWorkerRequestPayment>(data);
}

/// Types every hop shares.
pub(crate) fn common(data: &[u8]) {
    let _ = tl_round_trip::<TcpPacket>(data);
    http_payload(data);
    let _ = tl_round_trip::<TokensUsed>(data);
    let _ = tl_round_trip::<WorkerParams>(data);
    let _ = tl_round_trip::<ProxyParams>(data);
    let _ = tl_round_trip::<ClientParams>(data);
    let _ = tl_round_trip::<SignedPayment>(data);
    let _ = tl_round_trip::<ProxyConnectionAuth>(data);
}

/// Decodes frames from `pieces` until one is missing or an error.
fn decode_frames(pieces: &[&[u8]]) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    for piece in pieces {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
    }
    (frames, None)
}

/// The framing decoder fed in pieces: it must give what it gives when fed all at once, and the
/// frames it returns must re-encode to exactly the bytes they came from.
pub(crate) fn frame(data: &[u8]) {
    let (pieces, whole) = crate::pieces(data);
    let (frames, error) = decode_frames(&pieces);
    let (frames_whole, error_whole) = decode_frames(&[whole]);
    assert!(
        frames == frames_whole,
        "frames depend on how bytes are split"
    );
    assert!(error == error_whole, "a framing error depends on the split");
    let mut encoder = FrameEncoder::new();
    let mut wire = Vec::new();
    for frame in &frames {
        encoder
            .encode(frame, &mut wire)
            .expect("a decoded frame has a valid length");
    }
    assert!(
        whole.starts_with(&wire),
        "decoded frames do not re-encode to their bytes"
    );
}

/// A session, client or server as the first byte says, fed wire bytes in pieces at advancing
/// times; every event is drained and the output taken, as the connection task does.
pub(crate) fn session(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut session = if mode & 1 == 0 {
        Session::client(SessionConfig::client_default(), 0, 7)
    } else {
        Session::server(SessionConfig::server_default(), 0)
    };
    let (pieces, _) = crate::pieces(rest);
    let mut out = Vec::new();
    for (index, piece) in pieces.iter().enumerate() {
        let now = 1 + index as u64 * u64::from(mode >> 1) * 100;
        if session.receive(now, piece).is_err() {
            break;
        }
        while session.poll_event().is_some() {}
        session.take_output(&mut out);
        if session.handle_timeout(now).is_err() {
            break;
        }
    }
}

/// PoW challenge and response: exact fixed-size forms, so they must round-trip byte for byte.
pub(crate) fn pow(data: &[u8]) {
    if let Ok(challenge) = PowChallenge::from_bytes(data) {
        assert!(challenge.to_bytes()[..] == data[..], "challenge round trip");
        let _ = challenge.verify(0);
    }
    if let Ok(response) = PowResponse::from_bytes(data) {
        assert!(response.to_bytes()[..] == data[..], "response round trip");
    }
}
