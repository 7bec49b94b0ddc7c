//! A worker's signed payouts: the proxy hands the worker an `ext_worker_payout_request_signed`
//! message for what it earned; the worker keeps the latest one on disk, and `cocoon wallet
//! payout` submits it to the worker contract, repacked with the worker's own wallet as the
//! excess address (facts §8, §11). With it the worker is paid even if the proxy never sends it.

use std::io;
use std::path::{Path, PathBuf};

use crate::cocoon::{CodecError, SignedAction, SignedMessage};
use crate::Address;

/// Why kept bytes are not a payout for a worker contract.
#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    /// Not a signed message at all.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A signed message of another kind.
    #[error("not a worker payout (opcode {0:#010x})")]
    NotAPayout(u32),
    /// A payout for another contract.
    #[error("the payout is for {0}, not {1}")]
    OtherContract(String, String),
}

/// The tokens a signed worker payout pays up to.
pub fn payout_tokens(message: &SignedMessage) -> u64 {
    match message.payload.action {
        SignedAction::WorkerPayout { new_tokens } => new_tokens,
        _ => 0,
    }
}

/// Where a worker keeps its latest signed payout for `worker_contract` (one contract per proxy).
pub fn payout_path(dir: &Path, worker_contract: &Address) -> PathBuf {
    dir.join(format!(
        "payout-{}.boc",
        worker_contract.to_hex().replace(':', "_")
    ))
}

/// Reads a bag of cells that must be a `worker_payout_signed` for `worker_contract`. The
/// signature is checked by the contract, which knows the proxy's key.
pub fn parse_payout(bytes: &[u8], worker_contract: &Address) -> Result<SignedMessage, PayoutError> {
    let message = SignedMessage::from_boc(bytes)?;
    if !matches!(message.payload.action, SignedAction::WorkerPayout { .. }) {
        return Err(PayoutError::NotAPayout(message.payload.action.op()));
    }
    if &message.payload.expected_address != worker_contract {
        return Err(PayoutError::OtherContract(
            message.payload.expected_address.to_string(),
            worker_contract.to_string(),
        ));
    }
    Ok(message)
}

/// Keeps `boc` as the latest payout for `worker_contract` in `dir` if it pays more tokens than
/// the one there, and more than none: written to a temporary file, synced, renamed over the
/// kept one, and the directory synced, so that a crash leaves the old payout or the new one,
/// whole. Returns the tokens of the payout now kept, or `None` if `boc` is not a payout for
/// this contract.
///
/// Calls in one process take turns: two at once would otherwise share the temporary file, or
/// each read the kept payout before the other replaced it and put back the lower one. It
/// blocks for a few `fsync`s (milliseconds, far more while the disk is busy): from async code,
/// call it on a blocking thread.
pub fn keep_latest(dir: &Path, worker_contract: &Address, boc: &[u8]) -> io::Result<Option<u64>> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let Ok(new) = parse_payout(boc, worker_contract) else {
        return Ok(None);
    };
    let new_tokens = payout_tokens(&new);
    let path = payout_path(dir, worker_contract);
    // Only files are touched under it, so a panic cannot leave anything half-done in memory.
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let kept = std::fs::read(&path)
        .ok()
        .and_then(|bytes| parse_payout(&bytes, worker_contract).ok())
        .map(|m| payout_tokens(&m));
    if kept.is_some_and(|tokens| tokens >= new_tokens) {
        return Ok(kept);
    }
    // A payout for nothing (a proxy signs one for a worker that has earned nothing yet) pays
    // nothing: there is nothing to keep.
    if new_tokens == 0 {
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
    // The rename is durable once the directory is (on unix; elsewhere a directory cannot be
    // opened to sync it).
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(Some(new_tokens))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cocoon::SignedPayload;
    use crate::keys::ProxyKey;

    fn signed(target: &Address, action: SignedAction) -> Vec<u8> {
        let key = ProxyKey::from_seed(&[3; 32]);
        SignedPayload {
            action,
            query_id: 0,
            expected_address: target.clone(),
        }
        .sign(&key, target.clone())
        .unwrap()
        .to_boc()
        .unwrap()
    }

    fn payout(target: &Address, tokens: u64) -> Vec<u8> {
        signed(target, SignedAction::WorkerPayout { new_tokens: tokens })
    }

    #[test]
    fn only_a_higher_payout_for_this_contract_replaces_the_kept_one() {
        let dir = tempfile::tempdir().unwrap();
        let mine = crate::Wallet::from_seed(&[8; 32]).address().clone();
        let other = crate::Wallet::from_seed(&[9; 32]).address().clone();
        let keep = |bytes: Vec<u8>| keep_latest(dir.path(), &mine, &bytes).unwrap();
        assert_eq!(keep(payout(&mine, 0)), Some(0));
        assert!(
            !payout_path(dir.path(), &mine).exists(),
            "a payout for nothing is not kept"
        );
        assert_eq!(keep(payout(&mine, 10)), Some(10));
        assert_eq!(keep(payout(&mine, 7)), Some(10), "lower: kept");
        assert_eq!(keep(payout(&other, 99)), None, "other contract");
        let charge = signed(
            &mine,
            SignedAction::ClientCharge {
                new_tokens_used: 99,
            },
        );
        assert_eq!(keep(charge), None, "not a payout");
        let last = signed(&mine, SignedAction::WorkerLastPayout { new_tokens: 99 });
        assert_eq!(
            keep(last),
            None,
            "a last payout closes the contract: not kept"
        );
        assert_eq!(keep_latest(dir.path(), &mine, b"not a boc").unwrap(), None);
        assert_eq!(keep(payout(&mine, 12)), Some(12));
        let kept = std::fs::read(payout_path(dir.path(), &mine)).unwrap();
        assert_eq!(payout_tokens(&parse_payout(&kept, &mine).unwrap()), 12);
        assert!(matches!(
            parse_payout(&kept, &other),
            Err(PayoutError::OtherContract(..))
        ));
    }

    #[test]
    fn payouts_kept_at_once_from_many_threads_leave_the_highest_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mine = crate::Wallet::from_seed(&[8; 32]).address().clone();
        const THREADS: u64 = 8;
        const EACH: u64 = 25;
        // Thread t keeps t+1, t+1+THREADS, ...: every thread's payouts interleave with the
        // others', and the highest of all is the last of the last thread.
        let payouts: Vec<Vec<Vec<u8>>> = (0..THREADS)
            .map(|t| {
                (0..EACH)
                    .map(|i| payout(&mine, t + 1 + i * THREADS))
                    .collect()
            })
            .collect();
        std::thread::scope(|scope| {
            for own in &payouts {
                let (dir, mine) = (dir.path(), &mine);
                scope.spawn(move || {
                    let mut highest_seen = 0;
                    for bytes in own {
                        let kept = keep_latest(dir, mine, bytes).unwrap().unwrap();
                        assert!(kept >= highest_seen, "the kept payout went down");
                        highest_seen = kept;
                    }
                });
            }
        });
        let kept = std::fs::read(payout_path(dir.path(), &mine)).unwrap();
        let message = parse_payout(&kept, &mine).expect("the kept file is one whole payout");
        assert_eq!(payout_tokens(&message), THREADS * EACH);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left behind: {left:?}");
    }
}
