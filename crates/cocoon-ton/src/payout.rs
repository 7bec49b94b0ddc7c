//! A worker's signed payouts: the proxy hands the worker a `worker_payout_signed` message for
//! what it earned; the worker keeps the latest one on disk, and `cocoon wallet payout` submits
//! it to the worker contract. With it the worker is paid even if the proxy never sends it.

use std::io;
use std::path::{Path, PathBuf};

use crate::messages::{Body, MessageError, SignedMessage};
use crate::ops::op;
use crate::Address;

/// Where a worker keeps its latest signed payout for `worker_contract` (one contract per proxy).
pub fn payout_path(dir: &Path, worker_contract: &Address) -> PathBuf {
    dir.join(format!(
        "payout-{}.boc",
        worker_contract.to_hex().replace(':', "_")
    ))
}

/// Reads a bag of cells that must be a `worker_payout_signed` for `worker_contract`. The
/// signature is checked by the contract, which knows the proxy's key.
pub fn parse_payout(
    bytes: &[u8],
    worker_contract: &Address,
) -> Result<SignedMessage, MessageError> {
    match Body::from_boc(bytes)? {
        Body::Signed(message)
            if message.payload.op == op::WORKER_PAYOUT_SIGNED
                && &message.payload.target == worker_contract =>
        {
            Ok(message)
        }
        Body::Signed(message) if message.payload.op == op::WORKER_PAYOUT_SIGNED => {
            Err(MessageError::Malformed(format!(
                "the payout is for {}, not {worker_contract}",
                message.payload.target
            )))
        }
        other => Err(MessageError::Malformed(format!(
            "not a worker_payout_signed message (opcode {:#010x})",
            other.op()
        ))),
    }
}

/// Keeps `boc` as the latest payout for `worker_contract` in `dir` if it pays more tokens than
/// the one there, and more than none (written to a temporary file, synced, then renamed). Returns the tokens of
/// the payout now kept, or `None` if `boc` is not a payout for this contract.
pub fn keep_latest(dir: &Path, worker_contract: &Address, boc: &[u8]) -> io::Result<Option<u64>> {
    let Ok(new) = parse_payout(boc, worker_contract) else {
        return Ok(None);
    };
    let path = payout_path(dir, worker_contract);
    let kept = std::fs::read(&path)
        .ok()
        .and_then(|bytes| parse_payout(&bytes, worker_contract).ok())
        .map(|m| m.payload.tokens);
    if kept.is_some_and(|tokens| tokens >= new.payload.tokens) {
        return Ok(kept);
    }
    // A payout for nothing (a proxy signs one for a worker that has earned nothing yet) pays
    // nothing: there is nothing to keep.
    if new.payload.tokens == 0 {
        return Ok(Some(0));
    }
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("boc.tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(boc)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(Some(new.payload.tokens))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{ProxyKey, SignedPayload};

    fn payout(target: &Address, opcode: u32, tokens: u64) -> Vec<u8> {
        let key = ProxyKey::from_seed(&[3; 32]);
        let message = SignedPayload {
            op: opcode,
            query_id: 0,
            tokens,
            target: target.clone(),
        }
        .sign(&key, target.clone())
        .unwrap();
        Body::Signed(message).to_boc().unwrap()
    }

    #[test]
    fn only_a_higher_payout_for_this_contract_replaces_the_kept_one() {
        let dir = tempfile::tempdir().unwrap();
        let mine = crate::Wallet::from_seed(&[8; 32]).address().clone();
        let other = crate::Wallet::from_seed(&[9; 32]).address().clone();
        let keep = |target: &Address, opcode: u32, tokens: u64| {
            keep_latest(dir.path(), &mine, &payout(target, opcode, tokens)).unwrap()
        };
        assert_eq!(keep(&mine, op::WORKER_PAYOUT_SIGNED, 0), Some(0));
        assert!(
            !payout_path(dir.path(), &mine).exists(),
            "a payout for nothing is not kept"
        );
        assert_eq!(keep(&mine, op::WORKER_PAYOUT_SIGNED, 10), Some(10));
        assert_eq!(
            keep(&mine, op::WORKER_PAYOUT_SIGNED, 7),
            Some(10),
            "lower: kept"
        );
        assert_eq!(
            keep(&other, op::WORKER_PAYOUT_SIGNED, 99),
            None,
            "other contract"
        );
        assert_eq!(keep(&mine, op::CHARGE_SIGNED, 99), None, "not a payout");
        assert_eq!(keep_latest(dir.path(), &mine, b"not a boc").unwrap(), None);
        assert_eq!(keep(&mine, op::WORKER_PAYOUT_SIGNED, 12), Some(12));
        let kept = std::fs::read(payout_path(dir.path(), &mine)).unwrap();
        assert_eq!(parse_payout(&kept, &mine).unwrap().payload.tokens, 12);
        assert!(parse_payout(&kept, &other).is_err());
    }
}
