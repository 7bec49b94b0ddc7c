//! The journal file: a header, then length-prefixed, checksummed records, each appended with
//! one write and made durable with `fdatasync` before the call that wrote it returns.
//!
//! A record's frame is 12 bytes, then the payload:
//!
//! ```text
//! u32 LE  payload length (1 ..= MAX_RECORD)
//! u32 LE  CRC-32 of the payload
//! u32 LE  CRC-32 of the 8 bytes above (so a damaged length is told from a short write)
//! ```
//!
//! Reading tells a torn tail (what a crash during the last append leaves) from damage:
//! - fewer bytes than a frame header at the end, a valid header whose payload runs past the
//!   end, a last record whose payload checksum fails, or a bad header followed only by zero
//!   bytes (a file extended but not written): torn, cut off;
//! - anything else that does not check (a bad header or payload with more data after it):
//!   corruption, an error that names the file and the offset.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// The first bytes of a journal.
pub(crate) const MAGIC: [u8; 8] = *b"cTVMjrnl";
/// The journal's layout version, after the magic.
pub(crate) const VERSION: u32 = 1;
/// Magic and version.
pub(crate) const FILE_HEADER_LEN: u64 = 12;
/// Length, payload checksum, header checksum.
pub(crate) const FRAME_HEADER_LEN: u64 = 12;
/// The largest payload a record may have. A message body is at most a few kB on TON; 16 MiB
/// leaves room for any state init and keeps a corrupt length from asking for gigabytes.
pub(crate) const MAX_RECORD: usize = 16 << 20;

/// The journal's file header.
pub(crate) fn file_header() -> [u8; FILE_HEADER_LEN as usize] {
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    header[..8].copy_from_slice(&MAGIC);
    header[8..].copy_from_slice(&VERSION.to_le_bytes());
    header
}

/// A payload in its frame, ready for one write.
pub(crate) fn frame(payload: &[u8]) -> Result<Vec<u8>> {
    if payload.is_empty() || payload.len() > MAX_RECORD {
        return Err(Error::RecordTooLarge {
            size: payload.len(),
            limit: MAX_RECORD,
        });
    }
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN as usize + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&frame[..8]);
    frame.extend_from_slice(&header_crc.to_le_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// The CRC-32 of a frame's payload (as stored in its header).
pub(crate) fn payload_crc(frame: &[u8]) -> u32 {
    crc32fast::hash(&frame[FRAME_HEADER_LEN as usize..])
}

pub(crate) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// Checks the file header of an open journal.
pub(crate) fn check_file_header(file: &File, path: &Path) -> Result<()> {
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    let mut reader = file;
    reader.seek(SeekFrom::Start(0)).map_err(io_error(path))?;
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(corrupt(path, 0, "shorter than the journal header"))
        }
        Err(e) => return Err(io_error(path)(e)),
    }
    if header[..8] != MAGIC {
        return Err(corrupt(path, 0, "not a cocoon-tvm journal (wrong magic)"));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != VERSION {
        return Err(corrupt(
            path,
            8,
            format!("journal version {version}, this build reads {VERSION}"),
        ));
    }
    Ok(())
}

/// Appends one frame at the end of the journal (whose length must be `expected_len`: the
/// caller holds the lock and has read everything) and syncs it. On failure the file is cut
/// back to `expected_len` where possible, so a half-written frame is not left for the next
/// reader to judge.
pub(crate) fn append(file: &File, path: &Path, expected_len: u64, frame: &[u8]) -> Result<u64> {
    let len = file.metadata().map_err(io_error(path))?.len();
    if len != expected_len {
        return Err(corrupt(
            path,
            len,
            format!("the journal is {len} bytes, {expected_len} were expected"),
        ));
    }
    let mut writer = file;
    let written = writer.write_all(frame).and_then(|()| file.sync_data());
    if let Err(error) = written {
        let _ = file.set_len(expected_len).and_then(|()| file.sync_data());
        return Err(io_error(path)(error));
    }
    Ok(expected_len + frame.len() as u64)
}

/// A record read back.
pub(crate) struct Frame {
    /// Where its frame starts.
    pub offset: u64,
    /// Where the next frame starts.
    pub end: u64,
    /// Its payload checksum.
    pub crc: u32,
    pub payload: Vec<u8>,
}

/// What the next read found.
pub(crate) enum Next {
    Frame(Frame),
    /// The end of the journal.
    End,
    /// A torn tail from this offset to the end.
    Torn {
        at: u64,
    },
}

/// Reads frames from an offset to a known end of file.
pub(crate) struct Scanner<'a> {
    reader: BufReader<&'a File>,
    path: &'a Path,
    position: u64,
    len: u64,
}

impl<'a> Scanner<'a> {
    /// A scanner over `file` from `start` (a frame boundary) to `len` (its length, read under
    /// the lock).
    pub(crate) fn new(file: &'a File, path: &'a Path, start: u64, len: u64) -> Result<Self> {
        let mut handle = file;
        handle
            .seek(SeekFrom::Start(start))
            .map_err(io_error(path))?;
        Ok(Self {
            reader: BufReader::with_capacity(64 << 10, file),
            path,
            position: start,
            len,
        })
    }

    fn read_exact(&mut self, buffer: &mut [u8]) -> Result<()> {
        self.reader.read_exact(buffer).map_err(io_error(self.path))
    }

    /// The next frame, the end, or a torn tail; corruption is an error.
    pub(crate) fn next(&mut self) -> Result<Next> {
        let offset = self.position;
        let remaining = self.len.saturating_sub(offset);
        if remaining == 0 {
            return Ok(Next::End);
        }
        if remaining < FRAME_HEADER_LEN {
            return Ok(Next::Torn { at: offset });
        }
        let mut header = [0u8; FRAME_HEADER_LEN as usize];
        self.read_exact(&mut header)?;
        let field =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (len, crc, header_crc) = (field(0), field(4), field(8));
        if crc32fast::hash(&header[..8]) != header_crc {
            if header.iter().all(|&b| b == 0) && self.rest_is_zero()? {
                return Ok(Next::Torn { at: offset });
            }
            return Err(corrupt(
                self.path,
                offset,
                "record header checksum mismatch",
            ));
        }
        let len = len as usize;
        if len == 0 || len > MAX_RECORD {
            return Err(corrupt(
                self.path,
                offset,
                format!("record length {len} outside 1..={MAX_RECORD}"),
            ));
        }
        let end = offset + FRAME_HEADER_LEN + len as u64;
        if end > self.len {
            return Ok(Next::Torn { at: offset });
        }
        let mut payload = vec![0u8; len];
        self.read_exact(&mut payload)?;
        if crc32fast::hash(&payload) != crc {
            if end == self.len {
                return Ok(Next::Torn { at: offset });
            }
            return Err(corrupt(self.path, offset, "record checksum mismatch"));
        }
        self.position = end;
        Ok(Next::Frame(Frame {
            offset,
            end,
            crc,
            payload,
        }))
    }

    /// Whether every byte after the current read position is zero.
    fn rest_is_zero(&mut self) -> Result<bool> {
        let mut buffer = [0u8; 8 << 10];
        loop {
            let n = self.reader.read(&mut buffer).map_err(io_error(self.path))?;
            if n == 0 {
                return Ok(true);
            }
            if buffer[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(frames: &[&[u8]]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut bytes = file_header().to_vec();
        for payload in frames {
            bytes.extend(frame(payload).unwrap());
        }
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn scan(path: &Path) -> Result<(Vec<Vec<u8>>, Option<u64>)> {
        let file = File::open(path).unwrap();
        check_file_header(&file, path)?;
        let len = file.metadata().unwrap().len();
        let mut scanner = Scanner::new(&file, path, FILE_HEADER_LEN, len)?;
        let mut payloads = Vec::new();
        loop {
            match scanner.next()? {
                Next::Frame(frame) => payloads.push(frame.payload),
                Next::End => return Ok((payloads, None)),
                Next::Torn { at } => return Ok((payloads, Some(at))),
            }
        }
    }

    #[test]
    fn torn_tails_are_told_from_damage() {
        let (_dir, path) = journal(&[b"one", b"two", b"three"]);
        let whole = std::fs::read(&path).unwrap();
        let (payloads, torn) = scan(&path).unwrap();
        assert_eq!((payloads.len(), torn), (3, None));
        let last = whole.len() - (FRAME_HEADER_LEN as usize + 5);

        // Every cut inside the last record, and zeros in place of it: torn at its start.
        for cut in last..whole.len() {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let (payloads, torn) = scan(&path).unwrap();
            assert_eq!(payloads.len(), 2, "cut at {cut}");
            assert_eq!(torn, (cut > last).then_some(last as u64), "cut at {cut}");
        }
        let mut zeroed = whole.clone();
        zeroed[last..].fill(0);
        std::fs::write(&path, &zeroed).unwrap();
        assert_eq!(scan(&path).unwrap().1, Some(last as u64));
        let mut last_payload_damaged = whole.clone();
        *last_payload_damaged.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &last_payload_damaged).unwrap();
        assert_eq!(scan(&path).unwrap().1, Some(last as u64));

        // A damaged byte anywhere before the last record: an error at that record's offset.
        let second = FILE_HEADER_LEN as usize + FRAME_HEADER_LEN as usize + 3;
        for at in FILE_HEADER_LEN as usize..last {
            let mut damaged = whole.clone();
            damaged[at] ^= 0x40;
            std::fs::write(&path, &damaged).unwrap();
            let expected = if at < second { 12 } else { second as u64 };
            match scan(&path) {
                Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, expected, "byte {at}"),
                other => panic!("byte {at}: {:?}", other.map(|(p, t)| (p.len(), t))),
            }
        }
        std::fs::write(&path, b"cTVMjrnX\x01\0\0\0").unwrap();
        assert!(matches!(scan(&path), Err(Error::Corrupt { offset: 0, .. })));
        std::fs::write(&path, b"cTVM").unwrap();
        assert!(matches!(scan(&path), Err(Error::Corrupt { offset: 0, .. })));
    }

    #[test]
    fn empty_and_oversized_records_are_refused() {
        assert!(matches!(frame(b""), Err(Error::RecordTooLarge { .. })));
        assert!(matches!(
            frame(&vec![0; MAX_RECORD + 1]),
            Err(Error::RecordTooLarge { .. })
        ));
    }
}
