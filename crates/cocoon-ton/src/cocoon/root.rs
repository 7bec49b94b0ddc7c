//! The root contract (facts §4): the network's directory and the params with all three codes.
//!
//! Storage: `owner:addr version:u32 ^[proxy_hashes:(HashmapE 256 ()) registered_proxies:(HashmapE
//! 32 ProxyEntry) last_proxy_seqno:u32 worker_hashes:(HashmapE 256 ()) model_hashes:(HashmapE 256
//! ())] ^params` (variant 7). Pitfall (facts §13): that order of the data cell is the deployed
//! one; the Tolk port in the reference repository has another.
//!
//! Every inbound op is owner-only (1010), `op query_id` then the fields below; the answer is
//! always `excesses` to the sender. `version` grows with every change except `upgrade`;
//! `params_version` grows with price, params and code changes, and moves every derived address.
//! The runners read this storage directly rather than call get methods; [`RootData::cocoon_data`]
//! and [`RootData::cur_params`] compute what the two getters would answer.

use std::collections::{BTreeMap, BTreeSet};

use tonlib_core::cell::{ArcCell, Cell};
use tonlib_core::TonAddress;

use super::cell::{read_op, Reader, Writer};
use super::{dict, op, CodecError, Hash256, Params};
use crate::Coins;

/// The longest registered-proxy text the 7-bit length allows.
pub const MAX_PROXY_ENTRY_LEN: usize = 127;

/// A registered proxy: `type:u1 (=0) len:u7 text:(len bytes)`, stored inline (facts §4). The text
/// is `ip:port` for both roles, or `workers_ip:port clients_ip:port`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProxyEntry {
    text: String,
}

impl ProxyEntry {
    /// An entry with this text: ASCII, at most 127 bytes. A register or update body must also fit
    /// one cell, which leaves about 114 bytes (register) or 110 (update).
    pub fn new(text: &str) -> Result<ProxyEntry, CodecError> {
        if text.len() > MAX_PROXY_ENTRY_LEN {
            return Err(CodecError::ProxyEntry("longer than 127 bytes"));
        }
        if !text.is_ascii() {
            return Err(CodecError::ProxyEntry("not ASCII"));
        }
        Ok(ProxyEntry {
            text: text.to_owned(),
        })
    }

    /// The stored text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `(workers endpoint, clients endpoint)`: the two halves of `a b`, or the one address twice.
    pub fn endpoints(&self) -> (&str, &str) {
        match self.text.split_once(' ') {
            Some((workers, clients)) => (workers, clients),
            None => (&self.text, &self.text),
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<ProxyEntry, CodecError> {
        if r.bit("proxy entry type")? {
            return Err(CodecError::ProxyEntry("type bit is not 0"));
        }
        let len = r.u8(7, "proxy entry length")? as usize;
        let mut text = Vec::with_capacity(len);
        for _ in 0..len {
            text.push(r.u8(8, "proxy entry text")?);
        }
        let text = String::from_utf8(text).map_err(|_| CodecError::ProxyEntry("not ASCII"))?;
        ProxyEntry::new(&text)
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), CodecError> {
        w.bit(false)?
            .uint(7, self.text.len() as u64)?
            .bytes(self.text.as_bytes())?;
        Ok(())
    }
}

/// The root's storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootData {
    /// The only sender the root obeys.
    pub owner: TonAddress,
    /// Bumped by every change; runners reload when it grows.
    pub version: u32,
    /// Allowed proxy image hashes.
    pub proxy_hashes: BTreeSet<Hash256>,
    /// Registered proxies by seqno.
    pub registered_proxies: BTreeMap<u32, ProxyEntry>,
    /// Registry entries no node can use (type bit 1, a bad length, text that is not ASCII, or
    /// bits after the text), by seqno, kept as stored so the cell rebuilds. The C++ runners skip
    /// such entries too; one of them must not hide the others.
    pub unusable_proxies: BTreeMap<u32, Cell>,
    /// The seqno the last registration got (kept by `reset`).
    pub last_proxy_seqno: u32,
    /// Allowed worker image hashes.
    pub worker_hashes: BTreeSet<Hash256>,
    /// Allowed model hashes (SHA-256 of the whole model string).
    pub model_hashes: BTreeSet<Hash256>,
    /// The params with all three codes.
    pub params: Params,
}

fn read_hashes(r: &mut Reader<'_>, field: &'static str) -> Result<BTreeSet<Hash256>, CodecError> {
    let mut out = BTreeSet::new();
    for (key, value) in dict::read(r, 256, field)? {
        if value.bit_len() != 0 || !value.references().is_empty() {
            return Err(CodecError::Dictionary {
                field,
                reason: "a hash list value must be empty",
            });
        }
        let mut hash = [0; 32];
        hash.copy_from_slice(&key);
        out.insert(hash);
    }
    Ok(out)
}

fn write_hashes(w: &mut Writer, hashes: &BTreeSet<Hash256>) -> Result<(), CodecError> {
    let empty = Writer::new().build()?;
    let entries: Vec<dict::Entry> = hashes.iter().map(|h| (h.to_vec(), empty.clone())).collect();
    dict::write(w, 256, &entries)
}

impl RootData {
    /// A root as deployed: version 0, empty lists, no proxies.
    pub fn new(owner: TonAddress, params: Params) -> RootData {
        RootData {
            owner,
            version: 0,
            proxy_hashes: BTreeSet::new(),
            registered_proxies: BTreeMap::new(),
            unusable_proxies: BTreeMap::new(),
            last_proxy_seqno: 0,
            worker_hashes: BTreeSet::new(),
            model_hashes: BTreeSet::new(),
            params,
        }
    }

    /// The storage cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut d = Writer::new();
        write_hashes(&mut d, &self.proxy_hashes)?;
        let mut proxies = BTreeMap::new();
        for (seqno, entry) in &self.registered_proxies {
            let mut v = Writer::new();
            entry.write(&mut v)?;
            proxies.insert(*seqno, v.build()?);
        }
        for (seqno, raw) in &self.unusable_proxies {
            if proxies.insert(*seqno, raw.clone()).is_some() {
                return Err(CodecError::ProxyEntry(
                    "a seqno is both a usable and an unusable entry",
                ));
            }
        }
        let proxies: Vec<dict::Entry> = proxies
            .into_iter()
            .map(|(seqno, cell)| (seqno.to_be_bytes().to_vec(), cell))
            .collect();
        dict::write(&mut d, 32, &proxies)?;
        d.u32(self.last_proxy_seqno)?;
        write_hashes(&mut d, &self.worker_hashes)?;
        write_hashes(&mut d, &self.model_hashes)?;
        Writer::new()
            .address(&self.owner, "owner")?
            .u32(self.version)?
            .child(d.build()?)?
            .child(self.params.to_cell()?)?
            .build()
    }

    /// Reads the storage cell.
    pub fn from_cell(cell: &Cell) -> Result<RootData, CodecError> {
        let mut r = Reader::new(cell);
        let owner = r.address("owner")?;
        let version = r.u32("version")?;
        let data = r.reference("root data")?;
        let params = Params::from_cell(&*r.reference("params")?)?;
        r.finish("root storage")?;
        let mut d = Reader::new(&data);
        let proxy_hashes = read_hashes(&mut d, "proxy_hashes")?;
        let mut registered_proxies = BTreeMap::new();
        let mut unusable_proxies = BTreeMap::new();
        for (key, value) in dict::read(&mut d, 32, "registered_proxies")? {
            let seqno = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
            let mut v = Reader::new(&value);
            let entry = ProxyEntry::read(&mut v)
                .and_then(|entry| v.finish("registered proxy entry").map(|()| entry));
            match entry {
                Ok(entry) => {
                    registered_proxies.insert(seqno, entry);
                }
                Err(_) => {
                    unusable_proxies.insert(seqno, value);
                }
            }
        }
        let last_proxy_seqno = d.u32("last_proxy_seqno")?;
        let worker_hashes = read_hashes(&mut d, "worker_hashes")?;
        let model_hashes = read_hashes(&mut d, "model_hashes")?;
        d.finish("root data")?;
        Ok(RootData {
            owner,
            version,
            proxy_hashes,
            registered_proxies,
            unusable_proxies,
            last_proxy_seqno,
            worker_hashes,
            model_hashes,
            params,
        })
    }

    /// What `get_cocoon_data` answers.
    pub fn cocoon_data(&self) -> CocoonData {
        CocoonData {
            version: self.version,
            last_proxy_seqno: self.last_proxy_seqno,
            params_version: self.params.params_version,
            unique_id: self.params.unique_id,
            is_test: self.params.is_test,
            price_per_token: self.params.price_per_token,
            worker_fee_per_token: self.params.worker_fee_per_token,
            min_proxy_stake: self.params.min_proxy_stake,
            min_client_stake: self.params.min_client_stake,
            owner: self.owner.clone(),
        }
    }

    /// What `get_cur_params` answers (no prompt or completion multiplier: read [`Params`]).
    pub fn cur_params(&self) -> CurParams {
        let hash = |code: &Option<ArcCell>| -> Hash256 {
            code.as_ref().map_or([0; 32], |c| {
                let mut out = [0; 32];
                out.copy_from_slice(c.cell_hash().as_slice());
                out
            })
        };
        let p = &self.params;
        CurParams {
            params_version: p.params_version,
            unique_id: p.unique_id,
            is_test: p.is_test,
            price_per_token: p.price_per_token,
            worker_fee_per_token: p.worker_fee_per_token,
            cached_tokens_price_multiplier: p.cached_tokens_price_multiplier,
            reasoning_tokens_price_multiplier: p.reasoning_tokens_price_multiplier,
            proxy_delay_before_close: p.proxy_delay_before_close,
            client_delay_before_close: p.client_delay_before_close,
            min_proxy_stake: p.min_proxy_stake,
            min_client_stake: p.min_client_stake,
            proxy_code_hash: hash(&p.proxy_code),
            worker_code_hash: hash(&p.worker_code),
            client_code_hash: hash(&p.client_code),
        }
    }

    /// `proxy_hash_is_valid`.
    pub fn proxy_hash_is_valid(&self, hash: &Hash256) -> bool {
        self.proxy_hashes.contains(hash)
    }

    /// `worker_hash_is_valid`.
    pub fn worker_hash_is_valid(&self, hash: &Hash256) -> bool {
        self.worker_hashes.contains(hash)
    }

    /// `model_hash_is_valid`.
    pub fn model_hash_is_valid(&self, hash: &Hash256) -> bool {
        self.model_hashes.contains(hash)
    }
}

/// The result of `get_cocoon_data` (is_test as a bool; the getter answers 0 or 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CocoonData {
    /// Root version.
    pub version: u32,
    /// Last registered seqno.
    pub last_proxy_seqno: u32,
    /// Params version.
    pub params_version: u32,
    /// Network id.
    pub unique_id: u32,
    /// Test network.
    pub is_test: bool,
    /// Price per token.
    pub price_per_token: Coins,
    /// Worker fee per token.
    pub worker_fee_per_token: Coins,
    /// Minimum proxy stake.
    pub min_proxy_stake: Coins,
    /// Minimum client stake.
    pub min_client_stake: Coins,
    /// The root's owner.
    pub owner: TonAddress,
}

/// The result of `get_cur_params`; code hashes are zero for an absent code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurParams {
    /// Params version.
    pub params_version: u32,
    /// Network id.
    pub unique_id: u32,
    /// Test network.
    pub is_test: bool,
    /// Price per token.
    pub price_per_token: Coins,
    /// Worker fee per token.
    pub worker_fee_per_token: Coins,
    /// Cached tokens multiplier.
    pub cached_tokens_price_multiplier: u32,
    /// Reasoning tokens multiplier.
    pub reasoning_tokens_price_multiplier: u32,
    /// Proxy close delay.
    pub proxy_delay_before_close: u32,
    /// Client close delay.
    pub client_delay_before_close: u32,
    /// Minimum proxy stake.
    pub min_proxy_stake: Coins,
    /// Minimum client stake.
    pub min_client_stake: Coins,
    /// Representation hash of the proxy code.
    pub proxy_code_hash: Hash256,
    /// Representation hash of the worker code.
    pub worker_code_hash: Hash256,
    /// Representation hash of the client code.
    pub client_code_hash: Hash256,
}

/// Which hash list an add/del op changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashList {
    /// Worker image hashes.
    Worker,
    /// Model hashes.
    Model,
    /// Proxy image hashes.
    Proxy,
}

/// `(list, is_add)` for the six hash-list ops.
fn hash_list_op(opcode: u32) -> Option<(HashList, bool)> {
    match opcode {
        op::ROOT_ADD_WORKER_TYPE => Some((HashList::Worker, true)),
        op::ROOT_DEL_WORKER_TYPE => Some((HashList::Worker, false)),
        op::ROOT_ADD_MODEL_TYPE => Some((HashList::Model, true)),
        op::ROOT_DEL_MODEL_TYPE => Some((HashList::Model, false)),
        op::ROOT_ADD_PROXY_TYPE => Some((HashList::Proxy, true)),
        op::ROOT_DEL_PROXY_TYPE => Some((HashList::Proxy, false)),
        _ => None,
    }
}

/// Every body the root accepts (all owner-only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootMessage {
    /// `root_add_{worker,model,proxy}_type hash:u256`.
    AddHash {
        /// Echoed in the excess.
        query_id: u64,
        /// The list.
        list: HashList,
        /// The hash.
        hash: Hash256,
    },
    /// `root_del_{worker,model,proxy}_type hash:u256` (deleting a missing hash is fine).
    DelHash {
        /// Echoed in the excess.
        query_id: u64,
        /// The list.
        list: HashList,
        /// The hash.
        hash: Hash256,
    },
    /// `root_register_proxy entry`: stored under `last_proxy_seqno + 1`.
    RegisterProxy {
        /// Echoed in the excess.
        query_id: u64,
        /// The endpoint.
        entry: ProxyEntry,
    },
    /// `root_unregister_proxy seqno:u32`.
    UnregisterProxy {
        /// Echoed in the excess.
        query_id: u64,
        /// The registration.
        seqno: u32,
    },
    /// `root_update_proxy seqno:u32 entry` (the seqno must exist, 2000).
    UpdateProxy {
        /// Echoed in the excess.
        query_id: u64,
        /// The registration.
        seqno: u32,
        /// The new endpoint.
        entry: ProxyEntry,
    },
    /// `root_change_price price:coins worker_fee:coins`.
    ChangePrice {
        /// Echoed in the excess.
        query_id: u64,
        /// New price per token.
        price_per_token: Coins,
        /// New worker fee per token.
        worker_fee_per_token: Coins,
    },
    /// `root_change_params price worker_fee proxy_delay:u32 client_delay:u32 min_proxy_stake
    /// min_client_stake`.
    ChangeParams {
        /// Echoed in the excess.
        query_id: u64,
        /// New price per token.
        price_per_token: Coins,
        /// New worker fee per token.
        worker_fee_per_token: Coins,
        /// New proxy close delay.
        proxy_delay_before_close: u32,
        /// New client close delay.
        client_delay_before_close: u32,
        /// New minimum proxy stake.
        min_proxy_stake: Coins,
        /// New minimum client stake.
        min_client_stake: Coins,
    },
    /// `root_upgrade_contracts ^proxy ^worker ^client`.
    UpgradeContracts {
        /// Echoed in the excess.
        query_id: u64,
        /// New proxy code.
        proxy_code: ArcCell,
        /// New worker code.
        worker_code: ArcCell,
        /// New client code.
        client_code: ArcCell,
    },
    /// `root_upgrade ^code`: the root's own code; `version` is not bumped.
    Upgrade {
        /// Echoed in the excess.
        query_id: u64,
        /// New root code.
        code: ArcCell,
    },
    /// `root_reset`: clears the four dictionaries.
    Reset {
        /// Echoed in the excess.
        query_id: u64,
    },
    /// `root_upgrade_full ^data ^code`.
    UpgradeFull {
        /// Echoed in the excess.
        query_id: u64,
        /// New storage.
        data: ArcCell,
        /// New code.
        code: ArcCell,
    },
    /// `root_change_owner owner:addr`.
    ChangeOwner {
        /// Echoed in the excess.
        query_id: u64,
        /// The new owner.
        owner: TonAddress,
    },
}

impl RootMessage {
    /// The opcode.
    pub fn op(&self) -> u32 {
        match self {
            RootMessage::AddHash { list, .. } => match list {
                HashList::Worker => op::ROOT_ADD_WORKER_TYPE,
                HashList::Model => op::ROOT_ADD_MODEL_TYPE,
                HashList::Proxy => op::ROOT_ADD_PROXY_TYPE,
            },
            RootMessage::DelHash { list, .. } => match list {
                HashList::Worker => op::ROOT_DEL_WORKER_TYPE,
                HashList::Model => op::ROOT_DEL_MODEL_TYPE,
                HashList::Proxy => op::ROOT_DEL_PROXY_TYPE,
            },
            RootMessage::RegisterProxy { .. } => op::ROOT_REGISTER_PROXY,
            RootMessage::UnregisterProxy { .. } => op::ROOT_UNREGISTER_PROXY,
            RootMessage::UpdateProxy { .. } => op::ROOT_UPDATE_PROXY,
            RootMessage::ChangePrice { .. } => op::ROOT_CHANGE_PRICE,
            RootMessage::ChangeParams { .. } => op::ROOT_CHANGE_PARAMS,
            RootMessage::UpgradeContracts { .. } => op::ROOT_UPGRADE_CONTRACTS,
            RootMessage::Upgrade { .. } => op::ROOT_UPGRADE,
            RootMessage::Reset { .. } => op::ROOT_RESET,
            RootMessage::UpgradeFull { .. } => op::ROOT_UPGRADE_FULL,
            RootMessage::ChangeOwner { .. } => op::ROOT_CHANGE_OWNER,
        }
    }

    /// The query id.
    pub fn query_id(&self) -> u64 {
        match self {
            RootMessage::AddHash { query_id, .. }
            | RootMessage::DelHash { query_id, .. }
            | RootMessage::RegisterProxy { query_id, .. }
            | RootMessage::UnregisterProxy { query_id, .. }
            | RootMessage::UpdateProxy { query_id, .. }
            | RootMessage::ChangePrice { query_id, .. }
            | RootMessage::ChangeParams { query_id, .. }
            | RootMessage::UpgradeContracts { query_id, .. }
            | RootMessage::Upgrade { query_id, .. }
            | RootMessage::Reset { query_id }
            | RootMessage::UpgradeFull { query_id, .. }
            | RootMessage::ChangeOwner { query_id, .. } => *query_id,
        }
    }

    /// The body cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        w.u32(self.op())?.u64(self.query_id())?;
        match self {
            RootMessage::AddHash { hash, .. } | RootMessage::DelHash { hash, .. } => {
                w.bytes(hash)?;
            }
            RootMessage::RegisterProxy { entry, .. } => entry.write(&mut w)?,
            RootMessage::UnregisterProxy { seqno, .. } => {
                w.u32(*seqno)?;
            }
            RootMessage::UpdateProxy { seqno, entry, .. } => {
                w.u32(*seqno)?;
                entry.write(&mut w)?;
            }
            RootMessage::ChangePrice {
                price_per_token,
                worker_fee_per_token,
                ..
            } => {
                w.coins(*price_per_token, "price_per_token")?
                    .coins(*worker_fee_per_token, "worker_fee_per_token")?;
            }
            RootMessage::ChangeParams {
                price_per_token,
                worker_fee_per_token,
                proxy_delay_before_close,
                client_delay_before_close,
                min_proxy_stake,
                min_client_stake,
                ..
            } => {
                w.coins(*price_per_token, "price_per_token")?
                    .coins(*worker_fee_per_token, "worker_fee_per_token")?
                    .u32(*proxy_delay_before_close)?
                    .u32(*client_delay_before_close)?
                    .coins(*min_proxy_stake, "min_proxy_stake")?
                    .coins(*min_client_stake, "min_client_stake")?;
            }
            RootMessage::UpgradeContracts {
                proxy_code,
                worker_code,
                client_code,
                ..
            } => {
                w.reference(proxy_code)?
                    .reference(worker_code)?
                    .reference(client_code)?;
            }
            RootMessage::Upgrade { code, .. } => {
                w.reference(code)?;
            }
            RootMessage::Reset { .. } => {}
            RootMessage::UpgradeFull { data, code, .. } => {
                w.reference(data)?.reference(code)?;
            }
            RootMessage::ChangeOwner { owner, .. } => {
                w.address(owner, "owner")?;
            }
        }
        w.build()
    }

    /// Reads a body; an op the root does not handle (`root_change_params_full` included) is
    /// [`CodecError::UnknownOp`].
    pub fn from_cell(cell: &Cell) -> Result<RootMessage, CodecError> {
        let mut r = Reader::new(cell);
        let opcode = read_op(&mut r)?;
        let known = hash_list_op(opcode).is_some()
            || matches!(
                opcode,
                op::ROOT_REGISTER_PROXY
                    | op::ROOT_UNREGISTER_PROXY
                    | op::ROOT_UPDATE_PROXY
                    | op::ROOT_CHANGE_PRICE
                    | op::ROOT_CHANGE_PARAMS
                    | op::ROOT_UPGRADE_CONTRACTS
                    | op::ROOT_UPGRADE
                    | op::ROOT_RESET
                    | op::ROOT_UPGRADE_FULL
                    | op::ROOT_CHANGE_OWNER
            );
        if !known {
            return Err(CodecError::UnknownOp {
                layout: "root",
                op: opcode,
            });
        }
        let query_id = r.u64("query_id")?;
        let message = match hash_list_op(opcode) {
            Some((list, true)) => RootMessage::AddHash {
                query_id,
                list,
                hash: r.hash("hash")?,
            },
            Some((list, false)) => RootMessage::DelHash {
                query_id,
                list,
                hash: r.hash("hash")?,
            },
            None => match opcode {
                op::ROOT_REGISTER_PROXY => RootMessage::RegisterProxy {
                    query_id,
                    entry: ProxyEntry::read(&mut r)?,
                },
                op::ROOT_UNREGISTER_PROXY => RootMessage::UnregisterProxy {
                    query_id,
                    seqno: r.u32("seqno")?,
                },
                op::ROOT_UPDATE_PROXY => RootMessage::UpdateProxy {
                    query_id,
                    seqno: r.u32("seqno")?,
                    entry: ProxyEntry::read(&mut r)?,
                },
                op::ROOT_CHANGE_PRICE => RootMessage::ChangePrice {
                    query_id,
                    price_per_token: r.coins("price_per_token")?,
                    worker_fee_per_token: r.coins("worker_fee_per_token")?,
                },
                op::ROOT_CHANGE_PARAMS => RootMessage::ChangeParams {
                    query_id,
                    price_per_token: r.coins("price_per_token")?,
                    worker_fee_per_token: r.coins("worker_fee_per_token")?,
                    proxy_delay_before_close: r.u32("proxy_delay_before_close")?,
                    client_delay_before_close: r.u32("client_delay_before_close")?,
                    min_proxy_stake: r.coins("min_proxy_stake")?,
                    min_client_stake: r.coins("min_client_stake")?,
                },
                op::ROOT_UPGRADE_CONTRACTS => RootMessage::UpgradeContracts {
                    query_id,
                    proxy_code: r.reference("proxy_code")?,
                    worker_code: r.reference("worker_code")?,
                    client_code: r.reference("client_code")?,
                },
                op::ROOT_UPGRADE => RootMessage::Upgrade {
                    query_id,
                    code: r.reference("code")?,
                },
                op::ROOT_RESET => RootMessage::Reset { query_id },
                op::ROOT_UPGRADE_FULL => RootMessage::UpgradeFull {
                    query_id,
                    data: r.reference("data")?,
                    code: r.reference("code")?,
                },
                _ => RootMessage::ChangeOwner {
                    query_id,
                    owner: r.address("owner")?,
                },
            },
        };
        r.finish("root message")?;
        Ok(message)
    }
}
