//! Files that hold secrets (key files, configs with an auth secret or API token): created
//! readable by their owner only, mode 0600 on unix, from the first byte.
//!
//! The mode is given when the file is created, never set afterwards: a `chmod` after writing
//! leaves a window in which the secret is world-readable, and rewriting an existing file keeps
//! whatever mode it had. So a replacement is written to a fresh temporary file beside the
//! target and renamed over it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The mode of every secret file: read and write for the owner, nothing for anyone else.
pub const SECRET_FILE_MODE: u32 = 0o600;

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(SECRET_FILE_MODE);
    }
    options.open(path)
}

/// Creates `path` with `contents`, owner-only, and syncs it. Fails with `AlreadyExists` when
/// the file exists: for keys, which must never be silently replaced.
pub fn create_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = open_private(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Writes `contents` to `path`, owner-only, replacing the file if it exists (whatever its old
/// mode): written to a temporary file created 0600 in the same directory, synced, then renamed
/// over `path`.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temporary = temporary_path(path);
    // A temporary left by a crashed earlier write would make `create_new` fail.
    let _ = std::fs::remove_file(&temporary);
    let written =
        create_secret_file(&temporary, contents).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secret_files_are_created_owner_only_and_replacements_too() {
        let dir = std::env::temp_dir().join(format!("cocoon-secret-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("a.key");
        create_secret_file(&key, b"one").unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"one");
        let again = create_secret_file(&key, b"two").unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&key).unwrap(), b"one");

        // A config written world-readable by an older version is replaced by an owner-only one.
        let config = dir.join("client.toml");
        std::fs::write(&config, "secret = \"old\"\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        write_secret_file(&config, b"secret = \"new\"\n").unwrap();
        assert_eq!(std::fs::read(&config).unwrap(), b"secret = \"new\"\n");
        #[cfg(unix)]
        {
            assert_eq!(mode(&key), 0o600);
            assert_eq!(mode(&config), 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
