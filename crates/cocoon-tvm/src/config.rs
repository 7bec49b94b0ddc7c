//! The blockchain config, built in code with TON mainnet's prices (nothing is downloaded), and
//! the executor flags a TON (rather than Tycho) network implies.

use std::num::NonZeroU32;

use tycho_executor::{ExecutorParams, ParsedConfig};
use tycho_types::cell::HashBytes;
use tycho_types::dict::Dict;
use tycho_types::models::{
    BlockchainConfig, BurningConfig, GasLimitsPrices, GlobalCapability, GlobalVersion,
    MsgForwardPrices, StoragePrices, WorkchainDescription, WorkchainFormat, WorkchainFormatBasic,
};

use crate::error::{Error, Result};

/// TON global version 12 (TVM 12), the version @ton/sandbox 0.41 and mainnet run.
const GLOBAL_VERSION: u32 = 12;
/// Mainnet's capability bits for that version (as in the sandbox's default config).
const CAPABILITIES: u64 = 494;
/// Mainnet's global id; signatures with id (when that capability is on) use it.
const GLOBAL_ID: i32 = -239;

/// The config of a network with mainnet's fees. It holds exactly the parameters the executor
/// reads: 5 (fee burning), 8 (version and capabilities), 12 (workchains: the basechain only),
/// 18 (storage prices), 19 (global id), 20/21 (gas), 24/25 (forwarding), 31 (special accounts,
/// none). Param 43 (size limits) is absent, so the executor's defaults — mainnet's — apply.
///
/// Param 12 is written in the `workchain#a6` form: tycho-types 0.3.6 cannot parse the
/// `workchain_v2#a7` form of mainnet's own config, and nothing the executor uses differs.
pub fn mainnet_config() -> Result<BlockchainConfig> {
    build_mainnet_config().map_err(|e| Error::Config(e.to_string()))
}

fn build_mainnet_config() -> Result<BlockchainConfig, tycho_types::error::Error> {
    let mut config = BlockchainConfig::new_empty(HashBytes([0x55; 32]));
    let params = &mut config.params;
    params.set_global_version(&GlobalVersion {
        version: GLOBAL_VERSION,
        capabilities: CAPABILITIES.into(),
    })?;
    params.set_global_id(GLOBAL_ID)?;
    params.set_burning_config(&BurningConfig {
        blackhole_addr: Some(HashBytes([0xff; 32])),
        fee_burn_num: 1,
        // Half of the fees are burnt on mainnet.
        fee_burn_denom: NonZeroU32::MIN.saturating_add(1),
    })?;
    let gas = |gas_price, special_gas_limit, block_gas_limit, flat_gas_price| GasLimitsPrices {
        gas_price,
        gas_limit: 1_000_000,
        special_gas_limit,
        gas_credit: 10_000,
        block_gas_limit,
        freeze_due_limit: 100_000_000,
        delete_due_limit: 1_000_000_000,
        flat_gas_limit: 100,
        flat_gas_price,
    };
    // Masterchain, then basechain: 400 nanoton per gas unit on the basechain (26214400 / 2^16).
    params.set_gas_prices(true, &gas(655_360_000, 70_000_000, 2_500_000, 1_000_000))?;
    params.set_gas_prices(false, &gas(26_214_400, 1_000_000, 10_000_000, 40_000))?;
    let forward = |lump_price, bit_price, cell_price| MsgForwardPrices {
        lump_price,
        bit_price,
        cell_price,
        ihr_price_factor: 98_304,
        first_frac: 21_845,
        next_frac: 21_845,
    };
    params.set_msg_forward_prices(true, &forward(10_000_000, 655_360_000, 65_536_000_000))?;
    params.set_msg_forward_prices(false, &forward(400_000, 26_214_400, 2_621_440_000))?;
    params.set_storage_prices(&[StoragePrices {
        utime_since: 0,
        bit_price_ps: 1,
        cell_price_ps: 500,
        mc_bit_price_ps: 1000,
        mc_cell_price_ps: 500_000,
    }])?;
    let mut workchains = Dict::<i32, WorkchainDescription>::new();
    workchains.set(
        0,
        WorkchainDescription {
            enabled_since: 0,
            actual_min_split: 0,
            min_split: 0,
            max_split: 0,
            active: true,
            accept_msgs: true,
            zerostate_root_hash: HashBytes::ZERO,
            zerostate_file_hash: HashBytes::ZERO,
            version: 0,
            format: WorkchainFormat::Basic(WorkchainFormatBasic {
                vm_mode: 0,
                vm_version: 0,
            }),
        },
    )?;
    params.set_workchains(&workchains)?;
    params.set_fundamental_addresses(&[])?;
    Ok(config)
}

/// Parses a config for the executor at time `now` (storage prices depend on time).
pub(crate) fn parse(config: BlockchainConfig, now: u32) -> Result<ParsedConfig> {
    ParsedConfig::parse(config, now).map_err(|e| Error::Config(e.to_string()))
}

/// The executor's switches for a TON network: the ones TON derives from capabilities, and the
/// TON behaviour where tycho offers a choice (action fees charged when the action phase fails,
/// strict extra currencies, frozen accounts kept).
pub(crate) fn executor_params(
    config: &ParsedConfig,
    now: u32,
    lt: u64,
    rand_seed: HashBytes,
) -> ExecutorParams {
    let caps = config.global.capabilities;
    ExecutorParams {
        block_unixtime: now,
        block_lt: lt,
        rand_seed,
        full_body_in_bounced: caps.contains(GlobalCapability::CapFullBodyInBounced),
        charge_action_fees_on_fail: true,
        strict_extra_currency: true,
        disable_delete_frozen_accounts: true,
        authority_marks_enabled: false,
        vm_modifiers: tycho_vm::BehaviourModifiers {
            signature_with_id: caps
                .contains(GlobalCapability::CapSignatureWithId)
                .then_some(config.global_id),
            enable_signature_domains: caps.contains(GlobalCapability::CapSignatureDomain),
            ..Default::default()
        },
        ..Default::default()
    }
}
