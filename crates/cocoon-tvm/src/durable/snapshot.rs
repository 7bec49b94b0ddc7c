//! The snapshot file: the whole network and its history as of a journal offset, so opening
//! replays only the records after it. Written atomically (temporary file, fsync, rename, fsync
//! of the directory); one checksum covers it all.
//!
//! ```text
//! "cTVMsnap"  u32 version  u64 records  u64 journal offset
//! u64 start of the last record covered  u32 its payload CRC   (ties the snapshot to its journal)
//! history   bytes(network BOC)   u32 CRC-32 of everything before
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use super::codec::{Reader, Writer};
use super::history::History;
use super::journal::{corrupt, io_error};
use crate::error::Result;

const MAGIC: [u8; 8] = *b"cTVMsnap";
/// 2: out-message summaries in the history carry their forwarding fee.
const VERSION: u32 = 2;
/// Magic, version, and the record count: what [`records_covered`] reads.
const PREFIX_LEN: usize = 8 + 4 + 8;

/// What a snapshot holds.
pub(crate) struct Snapshot {
    /// Journal records covered, the genesis included.
    pub records: u64,
    /// The journal offset right after the last record covered.
    pub offset: u64,
    pub last_start: u64,
    pub last_crc: u32,
    pub history: History,
    /// [`crate::Network::snapshot`]'s bytes.
    pub network: Vec<u8>,
}

impl Snapshot {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.network.len() + 4096);
        w.raw(&MAGIC);
        w.u32(VERSION);
        w.u64(self.records);
        w.u64(self.offset);
        w.u64(self.last_start);
        w.u32(self.last_crc);
        self.history.encode(&mut w);
        w.bytes(&self.network);
        let mut bytes = w.finish();
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }
}

/// Writes `snapshot` as `path`, atomically: a temporary file beside it, synced, renamed over
/// it, and the directory synced so the rename itself is durable.
pub(crate) fn write(path: &Path, snapshot: &Snapshot) -> Result<()> {
    let bytes = snapshot.encode();
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(&bytes).map_err(io_error(&temporary))?;
    file.sync_all().map_err(io_error(&temporary))?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(io_error(path))?;
    sync_directory(path)
}

/// Syncs the directory holding `path`, so a file created or renamed there survives a crash.
pub(crate) fn sync_directory(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Reads the snapshot at `path`, if there is one; any damage is an error naming the file (the
/// journal still holds everything, so deleting the snapshot makes the next open replay it all).
pub(crate) fn read(path: &Path, history_limit: usize) -> Result<Option<Snapshot>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    let bad = |offset: usize, why: &str| {
        corrupt(
            path,
            offset as u64,
            format!("{why} (delete the snapshot to replay the whole journal)"),
        )
    };
    if bytes.len() < PREFIX_LEN + 4 || bytes[..8] != MAGIC {
        return Err(bad(0, "not a cocoon-tvm snapshot"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(bad(body.len(), "checksum mismatch"));
    }
    let mut r = Reader::new(&body[8..]);
    let decoded = (|| {
        if r.u32()? != VERSION {
            return Err("unknown snapshot version");
        }
        let snapshot = Snapshot {
            records: r.u64()?,
            offset: r.u64()?,
            last_start: r.u64()?,
            last_crc: r.u32()?,
            history: History::decode(&mut r, history_limit)?,
            network: r.bytes()?,
        };
        if !r.is_empty() {
            return Err("bytes after the network");
        }
        Ok(snapshot)
    })();
    decoded.map(Some).map_err(|why| bad(8, why))
}

/// The record count a snapshot file covers, from its first bytes, without reading the rest
/// (0 if there is no readable snapshot): how a handle learns that another process wrote one.
pub(crate) fn records_covered(path: &Path) -> u64 {
    let mut prefix = [0u8; PREFIX_LEN];
    let read = File::open(path).and_then(|mut f| f.read_exact(&mut prefix));
    if read.is_err() || prefix[..8] != MAGIC {
        return 0;
    }
    let mut r = Reader::new(&prefix[8..]);
    match (r.u32(), r.u64()) {
        (Ok(VERSION), Ok(records)) => records,
        _ => 0,
    }
}
