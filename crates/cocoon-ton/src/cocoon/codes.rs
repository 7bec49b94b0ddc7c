//! The contracts' code as `contracts/build/*.json` holds it (embedded at compile time):
//! our Tolk implementation of the deployed interface. Any compiled contracts with the same
//! interface placed there work unchanged.

use std::sync::OnceLock;

use base64::Engine as _;
use tonlib_core::cell::{ArcCell, BagOfCells};

/// The code cells.
#[derive(Debug)]
pub struct Codes {
    /// The root.
    pub root: ArcCell,
    /// The proxy contract.
    pub proxy: ArcCell,
    /// The client contract.
    pub client: ArcCell,
    /// The worker contract.
    pub worker: ArcCell,
    /// The cocoon wallet.
    pub wallet: ArcCell,
}

fn load(name: &str, json: &str) -> ArcCell {
    // The build files are committed and checked by `contracts/`'s tests (a drift test); a
    // broken one is a broken build, not an input.
    let value: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("contracts/build/{name}.json: {e}"));
    let boc = base64::engine::general_purpose::STANDARD
        .decode(value["code_boc_base64"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("contracts/build/{name}.json: {e}"));
    BagOfCells::parse(&boc)
        .and_then(|b| b.single_root())
        .unwrap_or_else(|e| panic!("contracts/build/{name}.json: {e}"))
}

/// The embedded codes.
pub fn codes() -> &'static Codes {
    static CODES: OnceLock<Codes> = OnceLock::new();
    CODES.get_or_init(|| Codes {
        root: load(
            "root",
            include_str!("../../../../contracts/build/root.json"),
        ),
        proxy: load(
            "proxy",
            include_str!("../../../../contracts/build/proxy.json"),
        ),
        client: load(
            "client",
            include_str!("../../../../contracts/build/client.json"),
        ),
        worker: load(
            "worker",
            include_str!("../../../../contracts/build/worker.json"),
        ),
        wallet: load(
            "wallet",
            include_str!("../../../../contracts/build/wallet.json"),
        ),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_code_parses_and_has_the_hash_its_build_file_names() {
        let codes = super::codes();
        for (name, cell, json) in [
            (
                "root",
                &codes.root,
                include_str!("../../../../contracts/build/root.json"),
            ),
            (
                "proxy",
                &codes.proxy,
                include_str!("../../../../contracts/build/proxy.json"),
            ),
            (
                "client",
                &codes.client,
                include_str!("../../../../contracts/build/client.json"),
            ),
            (
                "worker",
                &codes.worker,
                include_str!("../../../../contracts/build/worker.json"),
            ),
            (
                "wallet",
                &codes.wallet,
                include_str!("../../../../contracts/build/wallet.json"),
            ),
        ] {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(
                hex::encode(cell.cell_hash().as_slice()),
                value["code_hash_hex"].as_str().unwrap().to_lowercase(),
                "{name}"
            );
        }
    }
}
