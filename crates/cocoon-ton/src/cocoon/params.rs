//! The params cell (facts §3): prices, multipliers, close delays, minimum stakes and, depending on
//! who holds it, the contract codes.
//!
//! Layout: `struct_version:u8 (=3) params_version:u32 unique_id:u32 is_test:u1
//! price_per_token:coins worker_fee_per_token:coins prompt_mult:u32 cached_mult:u32
//! completion_mult:u32 reasoning_mult:u32 proxy_delay_before_close:u32
//! client_delay_before_close:u32 min_proxy_stake:coins min_client_stake:coins
//! proxy_code:(Maybe ^Cell) worker_code:(Maybe ^Cell) client_code:(Maybe ^Cell)`.
//!
//! Variants: the root holds all three codes, a proxy contract worker and client code only
//! ([`Params::for_proxy`]), client and worker contracts none ([`Params::without_code`]).
//! Pitfalls (facts §13): the params are hashed into every derived address, so a code ref too many
//! or a non-minimal coins field gives another address; `get_cur_params` omits the prompt and
//! completion multipliers, so read them from this cell. Multipliers use 10000 = 1.0×.

use tonlib_core::cell::{ArcCell, Cell};

use super::cell::{Reader, Writer};
use super::CodecError;
use crate::Coins;

/// The only params struct version the contracts accept (else exit 1008).
pub const STRUCT_VERSION: u8 = 3;

/// One multiplier of 1.0× (facts §3).
pub const MULTIPLIER_ONE: u32 = 10_000;

/// The params cell, struct version 3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Bumped by every change of prices, delays, stakes or codes; moves every address.
    pub params_version: u32,
    /// Network id.
    pub unique_id: u32,
    /// A test network.
    pub is_test: bool,
    /// nanoTON a client pays per (adjusted) token.
    pub price_per_token: Coins,
    /// nanoTON a worker earns per (adjusted) token; the rest is the proxy's commission.
    pub worker_fee_per_token: Coins,
    /// Prompt tokens multiplier (10000 = 1.0×); applied off-chain by the worker.
    pub prompt_tokens_price_multiplier: u32,
    /// Cached tokens multiplier.
    pub cached_tokens_price_multiplier: u32,
    /// Completion tokens multiplier.
    pub completion_tokens_price_multiplier: u32,
    /// Reasoning tokens multiplier.
    pub reasoning_tokens_price_multiplier: u32,
    /// Seconds between a proxy's close request and its close completion.
    pub proxy_delay_before_close: u32,
    /// Seconds between a client's first and second request_refund.
    pub client_delay_before_close: u32,
    /// Minimum proxy stake (never enforced on chain).
    pub min_proxy_stake: Coins,
    /// A client contract's stake at deploy.
    pub min_client_stake: Coins,
    /// Proxy contract code (root variant only).
    pub proxy_code: Option<ArcCell>,
    /// Worker contract code (root and proxy variants).
    pub worker_code: Option<ArcCell>,
    /// Client contract code (root and proxy variants).
    pub client_code: Option<ArcCell>,
}

impl Params {
    /// The price multipliers, which the worker applies to the usage it reports and the proxy to
    /// the bound it reserves.
    pub fn multipliers(&self) -> cocoon_proto::Multipliers {
        cocoon_proto::Multipliers {
            prompt: self.prompt_tokens_price_multiplier,
            cached: self.cached_tokens_price_multiplier,
            completion: self.completion_tokens_price_multiplier,
            reasoning: self.reasoning_tokens_price_multiplier,
        }
    }

    /// The same params without code: what client and worker contracts hold (variant 0).
    pub fn without_code(&self) -> Params {
        Params {
            proxy_code: None,
            worker_code: None,
            client_code: None,
            ..self.clone()
        }
    }

    /// The same params with worker and client code only: what a proxy contract holds
    /// (variant 6).
    pub fn for_proxy(&self) -> Params {
        Params {
            proxy_code: None,
            ..self.clone()
        }
    }

    /// The C++ bit mask of the codes present: 1 proxy, 2 worker, 4 client.
    pub fn variant(&self) -> u8 {
        u8::from(self.proxy_code.is_some())
            | (u8::from(self.worker_code.is_some()) << 1)
            | (u8::from(self.client_code.is_some()) << 2)
    }

    /// The params cell.
    pub fn to_cell(&self) -> Result<Cell, CodecError> {
        let mut w = Writer::new();
        w.uint(8, u64::from(STRUCT_VERSION))?
            .u32(self.params_version)?
            .u32(self.unique_id)?
            .bit(self.is_test)?
            .coins(self.price_per_token, "price_per_token")?
            .coins(self.worker_fee_per_token, "worker_fee_per_token")?
            .u32(self.prompt_tokens_price_multiplier)?
            .u32(self.cached_tokens_price_multiplier)?
            .u32(self.completion_tokens_price_multiplier)?
            .u32(self.reasoning_tokens_price_multiplier)?
            .u32(self.proxy_delay_before_close)?
            .u32(self.client_delay_before_close)?
            .coins(self.min_proxy_stake, "min_proxy_stake")?
            .coins(self.min_client_stake, "min_client_stake")?
            .maybe_ref(self.proxy_code.as_ref())?
            .maybe_ref(self.worker_code.as_ref())?
            .maybe_ref(self.client_code.as_ref())?;
        w.build()
    }

    /// Reads a params cell. The struct version is checked first (as the contracts do, 1008);
    /// unlike the contracts, nothing may follow the last field.
    pub fn from_cell(cell: &Cell) -> Result<Params, CodecError> {
        let mut r = Reader::new(cell);
        let version = r.u8(8, "struct_version")?;
        if version != STRUCT_VERSION {
            return Err(CodecError::ParamsStructVersion(version));
        }
        let params = Params {
            params_version: r.u32("params_version")?,
            unique_id: r.u32("unique_id")?,
            is_test: r.bit("is_test")?,
            price_per_token: r.coins("price_per_token")?,
            worker_fee_per_token: r.coins("worker_fee_per_token")?,
            prompt_tokens_price_multiplier: r.u32("prompt_tokens_price_multiplier")?,
            cached_tokens_price_multiplier: r.u32("cached_tokens_price_multiplier")?,
            completion_tokens_price_multiplier: r.u32("completion_tokens_price_multiplier")?,
            reasoning_tokens_price_multiplier: r.u32("reasoning_tokens_price_multiplier")?,
            proxy_delay_before_close: r.u32("proxy_delay_before_close")?,
            client_delay_before_close: r.u32("client_delay_before_close")?,
            min_proxy_stake: r.coins("min_proxy_stake")?,
            min_client_stake: r.coins("min_client_stake")?,
            proxy_code: r.maybe_ref("proxy_code")?,
            worker_code: r.maybe_ref("worker_code")?,
            client_code: r.maybe_ref("client_code")?,
        };
        r.finish("params")?;
        Ok(params)
    }
}
