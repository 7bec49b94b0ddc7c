//! The contracts as they live on a real TON network: their code (`contracts/build/*.json`),
//! their initial data (which fixes their addresses: `hash(StateInit{code, data})`), and readers
//! for their storage, in the layouts of `contracts/README.md`. The toncenter chain uses this;
//! `contracts/tests/addresses.test.js` and `tests/tvm_fixtures.rs` keep it equal to the Tolk
//! contracts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use tonlib_core::cell::dict::predefined_readers::{key_reader_256bit, key_reader_u32};
use tonlib_core::cell::{ArcCell, BagOfCells, Cell, CellBuilder, CellParser};
use tonlib_core::TonAddress;

use crate::messages::{params_cell, parse_params, MessageError};
use crate::ops::{ContractStatus, Params};
use crate::rules::{ClientState, ProxyState, RootState, WorkerState};
use crate::{big_to_coins, coins_to_big, Coins};

/// The compiled contracts.
pub struct Codes {
    /// The root registry.
    pub root: ArcCell,
    /// The proxy contract.
    pub proxy: ArcCell,
    /// The client contract.
    pub client: ArcCell,
    /// The worker contract.
    pub worker: ArcCell,
}

fn load_code(name: &str, json: &str) -> ArcCell {
    // The build files are committed and checked by the contract tests; a broken one is a
    // broken build, not an input.
    let value: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("contracts/build/{name}.json: {e}"));
    let boc = base64::engine::general_purpose::STANDARD
        .decode(value["code_boc_base64"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("contracts/build/{name}.json: {e}"));
    BagOfCells::parse(&boc)
        .and_then(|b| b.single_root())
        .unwrap_or_else(|e| panic!("contracts/build/{name}.json: {e}"))
}

/// The code cells built from `contracts/src` (embedded at compile time).
pub fn codes() -> &'static Codes {
    static CODES: OnceLock<Codes> = OnceLock::new();
    CODES.get_or_init(|| Codes {
        root: load_code("root", include_str!("../../../contracts/build/root.json")),
        proxy: load_code("proxy", include_str!("../../../contracts/build/proxy.json")),
        client: load_code(
            "client",
            include_str!("../../../contracts/build/client.json"),
        ),
        worker: load_code(
            "worker",
            include_str!("../../../contracts/build/worker.json"),
        ),
    })
}

/// The address of a contract with this code and initial data, on workchain 0.
pub fn address(code: &ArcCell, data: Cell) -> Result<TonAddress, MessageError> {
    Ok(TonAddress::derive(0, code.clone(), Arc::new(data))?)
}

fn empty_dict(b: &mut CellBuilder) -> Result<(), MessageError> {
    b.store_bit(false)?;
    Ok(())
}

/// The root's initial data: `owner`, version 0, `params`, an empty registry, the codes.
pub fn root_data(owner: &TonAddress, params: &Params) -> Result<Cell, MessageError> {
    let mut registry = CellBuilder::new();
    for _ in 0..4 {
        empty_dict(&mut registry)?;
    }
    for _ in 0..4 {
        registry.store_u32(32, 0)?;
    }
    let c = codes();
    let codes_cell = CellBuilder::new()
        .store_reference(&c.proxy)?
        .store_reference(&c.client)?
        .store_reference(&c.worker)?
        .build()?;
    Ok(CellBuilder::new()
        .store_address(owner)?
        .store_u32(32, 0)?
        .store_child(params_cell(params)?)?
        .store_child(registry.build()?)?
        .store_child(codes_cell)?
        .build()?)
}

/// The proxy contract's initial data. `params` is the root's params cell at deploy time.
pub fn proxy_data(
    owner: &TonAddress,
    root: &TonAddress,
    public_key: &[u8; 32],
    params: &Params,
) -> Result<Cell, MessageError> {
    let c = codes();
    let consts = CellBuilder::new()
        .store_address(owner)?
        .store_address(root)?
        .store_slice(public_key)?
        .store_reference(&c.client)?
        .store_reference(&c.worker)?
        .build()?;
    let zero = coins_to_big(Coins::ZERO);
    Ok(CellBuilder::new()
        .store_u8(8, 0)?
        .store_coins(&zero)?
        .store_coins(&zero)?
        .store_coins(&zero)?
        .store_u64(64, 0)?
        .store_slice(&[0; 32])?
        .store_u32(32, 0)?
        .store_u32(32, 0)?
        .store_child(consts)?
        .store_child(params_cell(params)?)?
        .build()?)
}

fn party_consts(
    owner: &TonAddress,
    proxy: &TonAddress,
    public_key: &[u8; 32],
    params: &Params,
) -> Result<Cell, MessageError> {
    Ok(CellBuilder::new()
        .store_address(owner)?
        .store_address(proxy)?
        .store_slice(public_key)?
        .store_child(params_cell(params)?)?
        .build()?)
}

/// A client contract's initial data. `params` is the proxy contract's params cell.
pub fn client_data(
    owner: &TonAddress,
    proxy: &TonAddress,
    public_key: &[u8; 32],
    params: &Params,
) -> Result<Cell, MessageError> {
    let zero = coins_to_big(Coins::ZERO);
    Ok(CellBuilder::new()
        .store_u8(8, 0)?
        .store_coins(&zero)?
        .store_coins(&zero)?
        .store_u64(64, 0)?
        .store_u32(32, 0)?
        .store_slice(&[0; 32])?
        .store_child(party_consts(owner, proxy, public_key, params)?)?
        .build()?)
}

/// A worker contract's initial data. `params` is the proxy contract's params cell.
pub fn worker_data(
    owner: &TonAddress,
    proxy: &TonAddress,
    public_key: &[u8; 32],
    params: &Params,
) -> Result<Cell, MessageError> {
    Ok(CellBuilder::new()
        .store_u8(8, 0)?
        .store_u64(64, 0)?
        .store_child(party_consts(owner, proxy, public_key, params)?)?
        .build()?)
}

// ---- storage readers --------------------------------------------------------------------------

fn coins(p: &mut CellParser<'_>) -> Result<u128, MessageError> {
    big_to_coins(&p.load_coins()?)
        .map(|c| c.0)
        .ok_or(MessageError::TooLarge("coins"))
}

fn hash(p: &mut CellParser<'_>) -> Result<[u8; 32], MessageError> {
    let mut h = [0; 32];
    p.load_slice(&mut h)?;
    Ok(h)
}

/// `None` for state 0 (initial data only: the deploy message never ran).
fn status(state: u8) -> Result<Option<ContractStatus>, MessageError> {
    match state {
        0 => Ok(None),
        1 => Ok(Some(ContractStatus::Running)),
        2 => Ok(Some(ContractStatus::Closing)),
        3 => Ok(Some(ContractStatus::Closed)),
        other => Err(MessageError::Malformed(format!("contract state {other}"))),
    }
}

/// Reads a root's storage.
pub fn parse_root(data: &Cell) -> Result<RootState, MessageError> {
    let mut p = data.parser();
    let owner = p.load_address()?;
    let params_version = p.load_u32(32)?;
    let params = parse_params(p.next_reference()?.as_ref())?;
    let registry = p.next_reference()?;
    let mut r = registry.parser();
    let set = |r: &mut CellParser<'_>| -> Result<BTreeSet<[u8; 32]>, MessageError> {
        let map = r.load_dict(256, key_reader_256bit, |v| v.load_bit())?;
        Ok(map
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(k, _)| {
                let mut h = [0; 32];
                h.copy_from_slice(k.as_slice());
                h
            })
            .collect())
    };
    let proxy_image_hashes = set(&mut r)?;
    let worker_image_hashes = set(&mut r)?;
    let model_hashes = set(&mut r)?;
    let endpoints = r.load_dict(32, key_reader_u32, |v| {
        let cell = v.next_reference()?;
        let mut e = cell.parser();
        let bits = e.remaining_bits();
        let mut bytes = vec![0; bits / 8];
        e.load_slice(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })?;
    Ok(RootState {
        owner,
        params,
        params_version,
        proxy_image_hashes,
        worker_image_hashes,
        model_hashes,
        proxies: endpoints.into_iter().collect::<BTreeMap<_, _>>(),
    })
}

/// Reads a proxy contract's storage; `None` before its deploy message ran.
pub fn parse_proxy(data: &Cell) -> Result<Option<ProxyState>, MessageError> {
    let mut p = data.parser();
    let Some(status) = status(p.load_u8(8)?)? else {
        return Ok(None);
    };
    let stake = coins(&mut p)?;
    let earned = coins(&mut p)?;
    let paid_out = coins(&mut p)?;
    let seqno = p.load_u64(64)?;
    let state_hash = hash(&mut p)?;
    let open_clients = p.load_u32(32)?;
    let open_workers = p.load_u32(32)?;
    let consts = p.next_reference()?;
    let mut c = consts.parser();
    let owner = c.load_address()?;
    let _root = c.load_address()?;
    let public_key = hash(&mut c)?;
    let params = parse_params(p.next_reference()?.as_ref())?;
    Ok(Some(ProxyState {
        owner,
        public_key,
        params,
        stake,
        earned,
        paid_out,
        seqno,
        state_hash,
        open_clients,
        open_workers,
        status,
    }))
}

/// The owner, proxy, key and params every client and worker contract carries.
fn parse_party(cell: &Cell) -> Result<(TonAddress, TonAddress, [u8; 32], Params), MessageError> {
    let mut c = cell.parser();
    let owner = c.load_address()?;
    let proxy = c.load_address()?;
    let key = hash(&mut c)?;
    let params = parse_params(c.next_reference()?.as_ref())?;
    Ok((owner, proxy, key, params))
}

/// Reads a client contract's storage; `None` before its deploy message ran.
pub fn parse_client(data: &Cell) -> Result<Option<ClientState>, MessageError> {
    let mut p = data.parser();
    let Some(status) = status(p.load_u8(8)?)? else {
        return Ok(None);
    };
    let balance = coins(&mut p)?;
    let stake = coins(&mut p)?;
    let tokens_used = p.load_u64(64)?;
    let unlock_time = p.load_u32(32)?;
    let secret_hash = hash(&mut p)?;
    let (owner, proxy, proxy_public_key, params) = parse_party(p.next_reference()?.as_ref())?;
    Ok(Some(ClientState {
        owner,
        proxy,
        proxy_public_key,
        price_per_token: u128::from(params.price_per_token),
        client_close_delay: params.client_close_delay,
        balance,
        stake,
        tokens_used,
        status,
        unlock_time,
        secret_hash,
    }))
}

/// Reads a worker contract's storage; `None` before its deploy message ran.
pub fn parse_worker(data: &Cell) -> Result<Option<WorkerState>, MessageError> {
    let mut p = data.parser();
    let Some(status) = status(p.load_u8(8)?)? else {
        return Ok(None);
    };
    let paid_tokens = p.load_u64(64)?;
    let (owner, proxy, proxy_public_key, params) = parse_party(p.next_reference()?.as_ref())?;
    Ok(Some(WorkerState {
        owner,
        proxy,
        proxy_public_key,
        worker_fee_per_token: u128::from(params.worker_fee_per_token),
        paid_tokens,
        status,
    }))
}
