//! The sandbox fixture (`contracts/fixtures/traces.json`) as the tests read it.

#![allow(dead_code)] // each test binary uses a part

use cocoon_tvm::{Address, Error, InternalMessage, Network, Trace};
use serde_json::Value;

pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../contracts/fixtures/traces.json"
);

pub fn fixture() -> Value {
    serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("fixture")).expect("json")
}

pub fn base64(text: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("base64 string"))
        .expect("base64")
}

pub fn address(text: &Value) -> Address {
    text.as_str()
        .expect("address string")
        .parse()
        .expect("address")
}

pub fn nano(text: &Value) -> u128 {
    text.as_str()
        .expect("number string")
        .parse()
        .expect("number")
}

pub fn now_of(step: &Value) -> u32 {
    u32::try_from(step["now"].as_u64().expect("now")).expect("now fits u32")
}

/// Sends a fixture step's message.
pub fn send(network: &mut Network, message: &Value) -> Result<Trace, Error> {
    let state_init = message["state_init"]
        .as_str()
        .map(|_| base64(&message["state_init"]));
    match message["kind"].as_str() {
        Some("internal") => network.send_internal(&InternalMessage {
            from: address(&message["from"]),
            to: address(&message["to"]),
            value: nano(&message["value"]),
            bounce: message["bounce"].as_bool().expect("bounce"),
            body: base64(&message["body"]),
            state_init,
        }),
        Some("external") => network.send_external(
            &address(&message["to"]),
            &base64(&message["body"]),
            state_init.as_deref(),
        ),
        other => panic!("message kind {other:?}"),
    }
}
