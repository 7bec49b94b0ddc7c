//! Key files: one Ed25519 seed as 64 hex digits and a newline, mode 0600. Wallet keys, the
//! proxy's payment signing key and the devnet's keys all use this format.

use std::path::{Path, PathBuf};

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing the file.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("{0}: not a key file (expected 64 hex digits)")]
    Malformed(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the seed in `path`.
pub fn read(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    parse(path, &text)
}

/// Reads the seed in `path`, first writing a fresh random one (mode 0600) if there is none.
pub fn read_or_create(path: &Path) -> Result<[u8; 32], KeyFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let mut seed = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
                .map_err(|_| io(path)(std::io::Error::other("no system randomness")))?;
            write_private(path, &format!("{}\n", hex::encode(seed)))?;
            Ok(seed)
        }
        Err(e) => Err(io(path)(e)),
    }
}

fn parse(path: &Path, text: &str) -> Result<[u8; 32], KeyFileError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| KeyFileError::Malformed(path.to_path_buf()))
}

fn write_private(path: &Path, text: &str) -> Result<(), KeyFileError> {
    cocoon_net::secret_file::create_secret_file(path, text.as_bytes()).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read_back_and_malformed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/a.key");
        let seed = read_or_create(&path).unwrap();
        assert_eq!(read_or_create(&path).unwrap(), seed);
        assert_eq!(read(&path).unwrap(), seed);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "abcd\n").unwrap();
        assert!(matches!(read(&bad), Err(KeyFileError::Malformed(_))));
        assert!(matches!(
            read(&dir.path().join("missing.key")),
            Err(KeyFileError::Io { .. })
        ));
    }
}
