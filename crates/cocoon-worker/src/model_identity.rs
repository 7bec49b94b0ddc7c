//! The worker's model identity in its attested claims (issue 14): the model hash (SHA-256 of
//! the model name it announces, which the root lists in `model_hashes`) and, when the operator
//! names the weights, their digest: SHA-256 of the weights file (hashed here at start) or a
//! digest given as is (a dm-verity root hash, or the file's hash behind a remote backend).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cocoon_attest::ClaimsExtras;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::config::WorkerConfig;

/// Read size while hashing weights: large enough that a 300 MB file takes a few hundred reads,
/// small enough that the worker never holds more than this of it in memory.
const HASH_CHUNK: usize = 1 << 20;

/// Why the weights could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("weights_file {}: {source}", path.display())]
pub struct WeightsError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// SHA-256 of a file, read in [`HASH_CHUNK`] pieces.
pub fn file_sha256(path: &Path) -> Result<[u8; 32], WeightsError> {
    let fail = |source| WeightsError {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_CHUNK];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(fail(error)),
        };
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().into())
}

/// The weights digest the config names: `weights_digest` as given, or SHA-256 of
/// `weights_file` (hashed on a blocking thread; the digest and the time it took are logged).
/// `None` when it names neither.
pub async fn weights_digest(config: &WorkerConfig) -> Result<Option<[u8; 32]>, WeightsError> {
    if let Some(text) = &config.weights_digest {
        // Checked by `WorkerConfig::problems` before the worker starts.
        return Ok(crate::config::parse_digest(text).ok());
    }
    let Some(path) = config.weights_file.clone() else {
        return Ok(None);
    };
    let started = Instant::now();
    let hashed = path.clone();
    let digest = tokio::task::spawn_blocking(move || file_sha256(&hashed))
        .await
        .map_err(|e| WeightsError {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;
    info!(
        weights_file = %path.display(),
        sha256 = %cocoon_attest::hex(&digest),
        seconds = started.elapsed().as_secs_f64(),
        "weights hashed for the attested claims"
    );
    Ok(Some(digest))
}

/// The extras of this worker's claims: its sealing key, the hash of the model it announces, and
/// the weights digest (`weights`, from [`weights_digest`]).
pub fn claims_extras(
    config: &WorkerConfig,
    sealing_key: Option<[u8; 32]>,
    weights: Option<[u8; 32]>,
) -> ClaimsExtras {
    ClaimsExtras {
        sealing_key,
        model_hash: Some(cocoon_attest::model_hash(&config.model)),
        weights_digest: weights,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_weights_digest_is_sha256_of_the_whole_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        // Over two chunks and not a multiple of one, so every read path is taken.
        let content: Vec<u8> = (0..(HASH_CHUNK * 2 + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        file.write_all(&content).unwrap();
        file.flush().unwrap();
        let expected: [u8; 32] = Sha256::digest(&content).into();
        assert_eq!(file_sha256(file.path()).unwrap(), expected);
        // A changed last byte changes the digest.
        file.as_file_mut()
            .set_len(content.len() as u64 - 1)
            .unwrap();
        assert_ne!(file_sha256(file.path()).unwrap(), expected);
        let missing = file_sha256(Path::new("/nonexistent/weights.gguf")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/weights.gguf"));
    }

    fn config() -> WorkerConfig {
        WorkerConfig::new(
            vec!["127.0.0.1:1".into()],
            "http://127.0.0.1:2",
            "Qwen/Qwen3-0.6B",
            cocoon_attest::TeeConfig::of(cocoon_attest::TeeKind::DangerFake),
            cocoon_attest::PeerPolicyConfig::of(cocoon_attest::PolicyKind::DangerFakeTdx),
        )
    }

    #[tokio::test]
    async fn the_claims_carry_the_announced_model_and_the_configured_weights() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"not really a model").unwrap();
        file.flush().unwrap();
        let mut config = config();
        assert_eq!(weights_digest(&config).await.unwrap(), None);
        config.weights_file = Some(file.path().to_path_buf());
        let digest = weights_digest(&config).await.unwrap();
        let expected: [u8; 32] = Sha256::digest(b"not really a model").into();
        assert_eq!(digest, Some(expected));
        let extras = claims_extras(&config, Some([9; 32]), digest);
        assert_eq!(
            extras.model_hash,
            Some(<[u8; 32]>::from(Sha256::digest(b"Qwen/Qwen3-0.6B")))
        );
        assert_eq!(extras.weights_digest, Some(expected));
        assert_eq!(extras.sealing_key, Some([9; 32]));

        let mut given = config.clone();
        given.weights_file = None;
        given.weights_digest = Some("ab".repeat(32));
        assert_eq!(weights_digest(&given).await.unwrap(), Some([0xab; 32]));
    }

    #[test]
    fn the_weights_keys_are_checked() {
        let mut both = config();
        both.weights_file = Some("/etc/hostname".into());
        both.weights_digest = Some("ab".repeat(32));
        assert!(both
            .problems()
            .iter()
            .any(|p| p.contains("weights_file") && p.contains("weights_digest")));
        let mut short = config();
        short.weights_digest = Some("abcd".into());
        assert!(short
            .problems()
            .iter()
            .any(|p| p.contains("weights_digest")));
        let mut missing = config();
        missing.weights_file = Some("/nonexistent/weights.gguf".into());
        assert!(missing
            .problems()
            .iter()
            .any(|p| p.contains("/nonexistent/weights.gguf")));
        assert!(config().problems().is_empty(), "{:?}", config().problems());
    }
}
