//! Targets for chain input (bags of cells and the COCOON contract codecs) and the ledger's
//! records.

use cocoon_ledger::Record;
use cocoon_ton::cocoon::{self, CodecError};
use cocoon_ton::Address;
use tonlib_core::cell::Cell;

/// A ledger record: the encoding is exact, so a decoded record re-encodes to its bytes.
pub(crate) fn ledger_record(data: &[u8]) {
    if let Ok((seqno, record)) = Record::decode(data) {
        assert!(record.to_bytes(seqno) == data, "ledger record round trip");
    }
}

/// Reads `cell` as one layout; a decoded value must encode to a cell that decodes and encodes
/// to the same cell.
macro_rules! layouts {
    ($cell:expr; $( $ty:ty ),* $(,)?) => {
        $( layout::<$ty>(stringify!($ty), $cell, <$ty>::from_cell, <$ty>::to_cell); )*
    };
}

fn layout<T>(
    name: &str,
    cell: &Cell,
    decode: fn(&Cell) -> Result<T, CodecError>,
    encode: fn(&T) -> Result<Cell, CodecError>,
) {
    let Ok(value) = decode(cell) else {
        return;
    };
    let encoded = encode(&value)
        .unwrap_or_else(|error| panic!("{name}: a decoded value does not encode: {error}"));
    let again = decode(&encoded)
        .unwrap_or_else(|error| panic!("{name}: its own encoding does not decode: {error}"));
    let encoded_again = encode(&again).unwrap_or_else(|error| panic!("{name}: {error}"));
    assert!(encoded_again == encoded, "{name}: encoding is not stable");
}

/// A bag of cells from the chain (a get-method result, an account's data, a message body, a
/// kept payout): its root read as every COCOON layout and message.
pub(crate) fn boc(data: &[u8]) {
    let _ = cocoon_ton::ton::from_boc(data);
    let _ = cocoon::SignedMessage::from_boc(data);
    let _ = cocoon_ton::payout::parse_payout(data, &Address::NULL);
    let Ok(root) = cocoon::from_boc(data) else {
        return;
    };
    let cell: &Cell = &root;
    layouts!(cell;
        cocoon::RootData,
        cocoon::RootMessage,
        cocoon::SignedPayload,
        cocoon::SignedMessage,
        cocoon::ClientData,
        cocoon::ClientReport,
        cocoon::ClientMessage,
        cocoon::WorkerData,
        cocoon::WorkerMessage,
        cocoon::WalletData,
        cocoon::WalletExternal,
        cocoon::WalletMessage,
        cocoon::Excesses,
        cocoon::Payout,
        cocoon::SaveState,
        cocoon::ProxyData,
        cocoon::ClientPayload,
        cocoon::WorkerPayload,
        cocoon::ProxyMessage,
        cocoon::Params,
    );
}
