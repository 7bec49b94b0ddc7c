//! Address derivation (facts §9): every COCOON contract lives at the hash of its StateInit, and
//! the code and params in that StateInit come from the root.
//!
//! StateInit = bits `0 0 1 1 0` (no split depth, not special, code, data, no library), refs
//! `[code, data]`; the address is workchain 0 with the StateInit's representation hash.
//!
//! | contract | code | data at deploy |
//! |---|---|---|
//! | proxy | root params' proxy code | [`ProxyData::initial`]: params variant 6 |
//! | client | root (or proxy) params' client code | [`ClientData::initial`]: stake = min_client_stake, params variant 0 |
//! | worker | root (or proxy) params' worker code | [`WorkerData::initial`]: params variant 0 |
//! | cocoon wallet | a fixed code (ours: `contracts/build/wallet.json`) | [`WalletData::initial`] |
//!
//! Pitfall (facts §13): every params change (`params_version` + 1) moves every proxy, client and
//! worker address; a node re-derives from the root's current params and winds the old contracts
//! down. Hash-list, proxy-list and owner changes move nothing.

use std::sync::Arc;

use tonlib_core::cell::{ArcCell, Cell};
use tonlib_core::TonAddress;

use super::cell::Writer;
use super::{ClientData, CodecError, Hash256, Params, ProxyData, RootData, WalletData, WorkerData};

/// Code and initial data of a contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateInit {
    /// The code cell.
    pub code: ArcCell,
    /// The data cell at deploy.
    pub data: ArcCell,
}

impl StateInit {
    /// A StateInit of `code` and the cell `data`.
    pub fn new(code: ArcCell, data: Cell) -> StateInit {
        StateInit {
            code,
            data: Arc::new(data),
        }
    }

    /// The StateInit cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        Writer::new()
            .uint(5, 0b00110)?
            .reference(&self.code)?
            .reference(&self.data)?
            .build()
    }

    /// The address on workchain 0.
    pub fn address(&self) -> Result<TonAddress, CodecError> {
        Ok(TonAddress::new(0, self.to_cell()?.cell_hash()))
    }
}

fn code<'a>(code: &'a Option<ArcCell>, which: &'static str) -> Result<&'a ArcCell, CodecError> {
    code.as_ref().ok_or(CodecError::MissingCode(which))
}

/// The proxy contract of `owner` with key `proxy_public_key`, derived from the root at `root`
/// and its params (with the proxy code).
pub fn proxy_contract(
    root: &TonAddress,
    root_params: &Params,
    owner: &TonAddress,
    proxy_public_key: &Hash256,
) -> Result<StateInit, CodecError> {
    let data = ProxyData::initial(owner.clone(), *proxy_public_key, root.clone(), root_params);
    Ok(StateInit::new(
        code(&root_params.proxy_code, "proxy")?.clone(),
        data.to_cell()?,
    ))
}

/// The proxy contract a proxy names in `proxy.params` (its owner, key and contract address, as
/// text), checked against the one the root's params derive from that owner and key (facts §9,
/// §11 step 1): the derived address, or why the proxy must be refused.
pub fn check_named_proxy(
    root: &TonAddress,
    root_params: &Params,
    proxy_owner: &str,
    proxy_public_key: &Hash256,
    named_contract: &str,
) -> Result<TonAddress, String> {
    let owner: TonAddress = proxy_owner
        .parse()
        .map_err(|e| format!("the proxy's owner address: {e}"))?;
    let derived = proxy_contract(root, root_params, &owner, proxy_public_key)
        .and_then(|init| init.address())
        .map_err(|e| e.to_string())?;
    if named_contract.parse::<TonAddress>().ok().as_ref() != Some(&derived) {
        return Err(format!(
            "the proxy names contract {named_contract:?}, but its owner and key derive {derived} from the root's params: refusing it"
        ));
    }
    Ok(derived)
}

/// The client contract of `client_owner` for the proxy contract at `proxy`. `params` is the
/// root's or the proxy contract's (either carries the client code; the data gets neither).
pub fn client_contract(
    proxy: &TonAddress,
    params: &Params,
    proxy_public_key: &Hash256,
    client_owner: &TonAddress,
) -> Result<StateInit, CodecError> {
    let data = ClientData::initial(
        client_owner.clone(),
        proxy.clone(),
        *proxy_public_key,
        params,
    );
    Ok(StateInit::new(
        code(&params.client_code, "client")?.clone(),
        data.to_cell()?,
    ))
}

/// The worker contract of `worker_owner` for the proxy contract at `proxy`.
pub fn worker_contract(
    proxy: &TonAddress,
    params: &Params,
    proxy_public_key: &Hash256,
    worker_owner: &TonAddress,
) -> Result<StateInit, CodecError> {
    let data = WorkerData::initial(
        worker_owner.clone(),
        proxy.clone(),
        *proxy_public_key,
        params,
    );
    Ok(StateInit::new(
        code(&params.worker_code, "worker")?.clone(),
        data.to_cell()?,
    ))
}

/// A cocoon wallet with this code, key and owner.
pub fn wallet_contract(
    code: ArcCell,
    public_key: &Hash256,
    owner: &TonAddress,
) -> Result<StateInit, CodecError> {
    let data = WalletData::initial(*public_key, owner.clone());
    Ok(StateInit::new(code, data.to_cell()?))
}

/// What a node reads from the root — its address and current params with the three codes —
/// and the contracts it derives from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// The root's address.
    pub root: TonAddress,
    /// The root's params (variant 7).
    pub params: Params,
}

impl Deployment {
    /// From the root's address and its parsed storage.
    pub fn from_root(root: TonAddress, data: &RootData) -> Deployment {
        Deployment {
            root,
            params: data.params.clone(),
        }
    }

    /// The proxy contract of a proxy (its owner wallet and signing key).
    pub fn proxy(
        &self,
        proxy_owner: &TonAddress,
        proxy_public_key: &Hash256,
    ) -> Result<StateInit, CodecError> {
        proxy_contract(&self.root, &self.params, proxy_owner, proxy_public_key)
    }

    /// The client contract of `client_owner` at the proxy of `proxy_owner` / `proxy_public_key`.
    pub fn client(
        &self,
        proxy_owner: &TonAddress,
        proxy_public_key: &Hash256,
        client_owner: &TonAddress,
    ) -> Result<StateInit, CodecError> {
        let proxy = self.proxy(proxy_owner, proxy_public_key)?.address()?;
        client_contract(&proxy, &self.params, proxy_public_key, client_owner)
    }

    /// The worker contract of `worker_owner` at the proxy of `proxy_owner` / `proxy_public_key`.
    pub fn worker(
        &self,
        proxy_owner: &TonAddress,
        proxy_public_key: &Hash256,
        worker_owner: &TonAddress,
    ) -> Result<StateInit, CodecError> {
        let proxy = self.proxy(proxy_owner, proxy_public_key)?.address()?;
        worker_contract(&proxy, &self.params, proxy_public_key, worker_owner)
    }
}
