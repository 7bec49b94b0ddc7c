//! The log file: a header, then one frame per group commit, appended back to back into space
//! that was allocated and zeroed beforehand. Opening verifies everything and cuts off a torn
//! last frame; reads find frames through an in-memory index and `pread`.
//!
//! ```text
//! file   = header frame* zeros
//! header = magic:[8] "cocoonLG" format:u32 (= 2) 0:u32 public_key:[32] 0:[12] crc:u32   (64 bytes)
//! frame  = body_len:u32 crc:u32 body            crc = CRC-32(body_len ‖ body), body_len ≥ 1
//! body   = count:u32 row{count} signed_seqno:u64 signature:[64]
//! row    = seqno:u64 len:u32 h_n:[32] encoding(record_n)       len = 32 + encoding length
//! ```
//!
//! All integers little-endian. The log ends at the first frame header that is all zeros (or
//! at the end of the file). The file grows by [`CHUNK`] bytes of written zeros at a time, so a
//! commit (one `pwrite` of its frame, one `fdatasync`) changes no file metadata.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, RwLock};

use crate::accounts::Books;
use crate::chain::{genesis_hash, next_hash, verify_batch, PublicKey, Signature, Signer};
use crate::error::{storage, CorruptReason, LedgerError, OpenError};
use crate::legacy;
use crate::record::Record;

/// The first bytes of a ledger log.
pub(crate) const MAGIC: [u8; 8] = *b"cocoonLG";
/// The format this build writes and reads (1 was the redb file).
pub(crate) const FORMAT: u32 = 2;
/// Bytes before the first frame.
pub(crate) const HEADER_LEN: u64 = 64;
/// `body_len` and `crc`.
pub(crate) const FRAME_HEADER_LEN: u64 = 8;
/// The largest body a frame may have. The writer never comes near it (4096 records of at
/// most ~650 bytes); it bounds what a damaged length can make the reader allocate.
pub(crate) const MAX_FRAME_LEN: u64 = 64 << 20;
/// The file grows by this much (written zeros, synced once) when a frame does not fit.
pub(crate) const CHUNK: u64 = 4 << 20;
/// Per row: seqno and len.
const ROW_HEADER_LEN: usize = 12;
/// count at the start of the body, signed seqno and signature at its end.
const BODY_FIXED_LEN: usize = 4 + 8 + 64;

/// The position of the last record and the chain hash after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Seqno of the last record (0 for an empty ledger).
    pub seqno: u64,
    /// `h_seqno`.
    pub hash: [u8; 32],
}

/// A record as stored, with its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its seqno.
    pub seqno: u64,
    /// The chain hash after it.
    pub hash: [u8; 32],
    /// The batch signature, when it ends a batch.
    pub signature: Option<Signature>,
    /// The record.
    pub record: Record,
}

/// What a verified file holds.
pub(crate) struct Replayed {
    pub(crate) books: Books,
    pub(crate) head: Head,
}

/// The CRC-32 of a frame: over its length field and its body.
pub(crate) fn frame_crc(body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(body.len() as u32).to_le_bytes());
    hasher.update(body);
    hasher.finalize()
}

/// The file header of a ledger owned by `public_key`.
pub(crate) fn header(public_key: &PublicKey) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    header[16..48].copy_from_slice(public_key);
    let crc = crc32fast::hash(&header[..60]);
    header[60..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Builds frames in a buffer: [`FrameBuilder::start`], [`FrameBuilder::row`] per record,
/// [`FrameBuilder::finish`].
pub(crate) struct FrameBuilder;

impl FrameBuilder {
    /// Clears `buffer` and writes the frame and body headers with placeholders.
    pub(crate) fn start(buffer: &mut Vec<u8>) {
        buffer.clear();
        buffer.extend_from_slice(&[0; FRAME_HEADER_LEN as usize + 4]);
    }

    /// Appends a row with a zero hash; returns where its hash and encoding start, for the
    /// caller to append the encoding and fill in the hash ([`FrameBuilder::end_row`]).
    pub(crate) fn row(buffer: &mut Vec<u8>, seqno: u64) -> usize {
        buffer.extend_from_slice(&seqno.to_le_bytes());
        buffer.extend_from_slice(&[0; 4]);
        let value = buffer.len();
        buffer.extend_from_slice(&[0; 32]);
        value
    }

    /// Fills in the length and the hash of the row whose value starts at `value`.
    pub(crate) fn end_row(buffer: &mut [u8], value: usize, hash: &[u8; 32]) {
        let len = (buffer.len() - value) as u32;
        buffer[value - 4..value].copy_from_slice(&len.to_le_bytes());
        buffer[value..value + 32].copy_from_slice(hash);
    }

    /// Appends the signature and fills in the count, length and CRC.
    pub(crate) fn finish(
        buffer: &mut Vec<u8>,
        count: u32,
        signed_seqno: u64,
        signature: &Signature,
    ) {
        buffer.extend_from_slice(&signed_seqno.to_le_bytes());
        buffer.extend_from_slice(signature);
        let body_start = FRAME_HEADER_LEN as usize;
        buffer[body_start..body_start + 4].copy_from_slice(&count.to_le_bytes());
        let crc = frame_crc(&buffer[body_start..]);
        let body_len = (buffer.len() - body_start) as u32;
        buffer[..4].copy_from_slice(&body_len.to_le_bytes());
        buffer[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Appends one complete frame of `rows` (`seqno`, `h_n ‖ encoding`) to `out`.
pub(crate) fn encode_frame<'a>(
    out: &mut Vec<u8>,
    rows: impl IntoIterator<Item = (u64, &'a [u8])>,
    signed_seqno: u64,
    signature: &Signature,
) {
    let mut frame = Vec::new();
    FrameBuilder::start(&mut frame);
    let mut count = 0u32;
    for (seqno, value) in rows {
        let at = FrameBuilder::row(&mut frame, seqno);
        frame.truncate(at);
        frame.extend_from_slice(value);
        frame[at - 4..at].copy_from_slice(&(value.len() as u32).to_le_bytes());
        count += 1;
    }
    FrameBuilder::finish(&mut frame, count, signed_seqno, signature);
    out.extend_from_slice(&frame);
}

/// A frame body, parsed (its CRC already checked).
pub(crate) struct Frame<'a> {
    /// `(seqno, h_n ‖ encoding)` per row.
    pub(crate) rows: Vec<(u64, &'a [u8])>,
    pub(crate) signed_seqno: u64,
    pub(crate) signature: Signature,
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Splits a body into rows and signature. Never panics; lengths are checked against what is
/// left before anything is allocated.
pub(crate) fn parse_body(body: &[u8]) -> Result<Frame<'_>, &'static str> {
    if body.len() < BODY_FIXED_LEN {
        return Err("frame body too short");
    }
    let count = read_u32(body, 0).ok_or("frame body too short")? as usize;
    let rows_end = body.len() - 72;
    if count > (rows_end - 4) / ROW_HEADER_LEN {
        return Err("row count exceeds the frame");
    }
    let mut rows = Vec::with_capacity(count);
    let mut at = 4;
    for _ in 0..count {
        let seqno = read_u64(body, at).ok_or("row beyond the frame")?;
        let len = read_u32(body, at + 8).ok_or("row beyond the frame")? as usize;
        let start = at + ROW_HEADER_LEN;
        if len > rows_end.saturating_sub(start) {
            return Err("row beyond the frame");
        }
        rows.push((seqno, &body[start..start + len]));
        at = start + len;
    }
    if at != rows_end {
        return Err("bytes between the rows and the signature");
    }
    let signed_seqno = read_u64(body, rows_end).ok_or("frame body too short")?;
    let signature: Signature = body[rows_end + 8..]
        .try_into()
        .map_err(|_| "frame body too short")?;
    Ok(Frame {
        rows,
        signed_seqno,
        signature,
    })
}

/// Where committed frames are: `(first seqno, offset)` per frame, ascending, and the end of
/// the last one.
#[derive(Default)]
struct Index {
    frames: Vec<(u64, u64)>,
    end: u64,
}

/// The open log file, shared by the writer (appends) and readers (`pread`).
pub(crate) struct Log {
    file: File,
    index: RwLock<Index>,
}

/// The writer's side of the log: where the next frame goes and how far the file is allocated.
pub(crate) struct Appender {
    log: Arc<Log>,
    end: u64,
    space: Arc<Space>,
    /// The thread preparing the next chunk, if one was started.
    extender: Option<std::thread::JoinHandle<()>>,
    durable: bool,
}

/// How far the file holds written, synced zeros (or frames): frames may go anywhere below
/// `allocated`. The file is extended past it by one party at a time, normally a helper thread
/// started when less than half a chunk is left, so a commit rarely waits for 4 MiB of zeros
/// and their sync (tens of ms on a busy disk: they made the paid relay's p99).
struct Space {
    allocated: AtomicU64,
    extending: Mutex<()>,
}

impl Space {
    /// Writes zeros from the allocated end up to `target`, syncs them, then publishes the new
    /// end. Only zeros past `allocated` are written, where no frame can be yet.
    fn extend_to(&self, file: &File, target: u64) -> std::io::Result<()> {
        let _one_at_a_time = self.extending.lock().unwrap_or_else(|e| e.into_inner());
        let from = self.allocated.load(AtomicOrdering::Acquire);
        if from >= target {
            return Ok(());
        }
        write_zeros(file, from, target)?;
        file.sync_data()?;
        self.allocated.store(target, AtomicOrdering::Release);
        Ok(())
    }
}

fn corrupt(seqno: u64, reason: CorruptReason) -> OpenError {
    OpenError::Corrupt { seqno, reason }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Syncs the directory holding `path`, so that a rename or creation in it is durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Writes zeros over `from..to` of `file`.
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; (1 << 20).min(to.saturating_sub(from)) as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Writes a complete new log — header, `frames`, zeros up to a whole chunk — to a temporary
/// name next to `path`, syncs it, and renames it to `path`. So `path` is never a partial
/// header, whatever moment a crash picks.
fn write_new_file(path: &Path, public_key: &PublicKey, frames: &[u8]) -> std::io::Result<()> {
    let temporary = sibling(path, ".new");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    file.write_all_at(&header(public_key), 0)?;
    file.write_all_at(frames, HEADER_LEN)?;
    let end = HEADER_LEN + frames.len() as u64;
    write_zeros(&file, end, end.div_ceil(CHUNK).max(1) * CHUNK)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    sync_parent(path)
}

/// Opens (or creates) the log at `path`, checks it belongs to `signer`, verifies every frame,
/// the whole chain and every signature, cuts off a torn last frame, and replays the records
/// into books. A redb file of the previous format is migrated first.
pub(crate) fn open(path: &Path, signer: &Signer) -> Result<(Appender, Replayed), OpenError> {
    let public_key = *signer.public_key();
    let mut start = Vec::with_capacity(HEADER_LEN as usize);
    match File::open(path) {
        Ok(file) => {
            file.take(HEADER_LEN).read_to_end(&mut start)?;
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error.into()),
    }
    if start.is_empty() {
        write_new_file(path, &public_key, &[])?;
        tracing::info!(path = %path.display(), "created a new ledger");
    } else if start.starts_with(&legacy::REDB_MAGIC) {
        migrate(path, &public_key)?;
    }
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    // One writer per file: a second process (or a second `Ledger` in this one) appending to
    // the same log would interleave frames. Held until the file is closed; the kernel drops
    // it when the process dies.
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(OpenError::Storage(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("{} is open in another ledger", path.display()),
            )))
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(error.into()),
    }
    check_header(&file, &public_key)?;
    let scanned = scan(&file, &public_key)?;
    let allocated = file.metadata()?.len();
    if let Some(torn) = scanned.torn {
        tracing::warn!(
            path = %path.display(),
            offset = torn.offset,
            bytes = torn.to - torn.offset,
            seqno = scanned.head.seqno,
            "cutting off a torn last frame: a commit that was never acknowledged"
        );
        write_zeros(&file, torn.offset, torn.to)?;
        file.sync_data()?;
    }
    let end = scanned.index.end;
    let log = Arc::new(Log {
        file,
        index: RwLock::new(scanned.index),
    });
    let appender = Appender {
        log,
        end,
        space: Arc::new(Space {
            allocated: AtomicU64::new(allocated),
            extending: Mutex::new(()),
        }),
        extender: None,
        durable: true,
    };
    Ok((
        appender,
        Replayed {
            books: scanned.books,
            head: scanned.head,
        },
    ))
}

fn check_header(file: &File, public_key: &PublicKey) -> Result<(), OpenError> {
    let mut header = [0u8; HEADER_LEN as usize];
    let mut read = 0;
    while read < header.len() {
        match file.read_at(&mut header[read..], read as u64)? {
            0 => break,
            n => read += n,
        }
    }
    if read < header.len() || header[..8] != MAGIC {
        return Err(OpenError::UnsupportedFormat(
            "not a cocoon ledger (no ledger header)".into(),
        ));
    }
    let crc = u32::from_le_bytes(header[60..].try_into().expect("4 bytes"));
    if crc32fast::hash(&header[..60]) != crc {
        return Err(OpenError::UnsupportedFormat(
            "the ledger header fails its checksum".into(),
        ));
    }
    let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if format != FORMAT {
        return Err(OpenError::UnsupportedFormat(format!(
            "format version {format}"
        )));
    }
    let file_key: [u8; 32] = header[16..48].try_into().expect("32 bytes");
    if &file_key != public_key {
        return Err(OpenError::WrongKey {
            file_key,
            configured_key: *public_key,
        });
    }
    Ok(())
}

/// Checks one stored row (`h_n ‖ encoding`, stored under `key`) against the chain so far —
/// the next seqno, a record that decodes and names that seqno, the right hash — applies it to
/// `books`, and returns the new head. Shared by the log and the redb format it migrates from.
pub(crate) fn verify_row(
    head: &Head,
    books: &mut Books,
    key: u64,
    value: &[u8],
) -> Result<Head, OpenError> {
    let seqno = head.seqno + 1;
    if key != seqno {
        return Err(corrupt(seqno, CorruptReason::Gap { expected: seqno }));
    }
    if value.len() < 32 {
        return Err(corrupt(seqno, CorruptReason::Short));
    }
    let (stored_hash, encoded) = value.split_at(32);
    let (record_seqno, record) =
        Record::decode(encoded).map_err(|e| corrupt(seqno, CorruptReason::Decode(e)))?;
    if record_seqno != seqno {
        return Err(corrupt(seqno, CorruptReason::SeqnoMismatch(record_seqno)));
    }
    let hash = next_hash(&head.hash, encoded);
    if stored_hash != hash {
        return Err(corrupt(seqno, CorruptReason::HashMismatch));
    }
    books
        .apply(&record)
        .map_err(|source| OpenError::InvalidRecord { seqno, source })?;
    Ok(Head { seqno, hash })
}

/// Bytes at the end of the log to cut off.
struct Torn {
    offset: u64,
    to: u64,
}

struct Scanned {
    books: Books,
    head: Head,
    index: Index,
    torn: Option<Torn>,
}

/// Verifies the chain, frame by frame.
struct Verifier<'k> {
    public_key: &'k PublicKey,
    books: Books,
    head: Head,
    head_signed: bool,
    /// A signature of a record beyond its frame: harmless at the very end (the head is then
    /// unsigned), corruption if another frame follows.
    dangling: Option<u64>,
}

impl Verifier<'_> {
    fn frame(&mut self, offset: u64, body: &[u8]) -> Result<u64, OpenError> {
        let expected = self.head.seqno + 1;
        let frame = parse_body(body)
            .map_err(|problem| corrupt(expected, CorruptReason::Frame { offset, problem }))?;
        if frame.rows.is_empty() {
            return Err(corrupt(
                frame.signed_seqno,
                CorruptReason::DanglingSignature,
            ));
        }
        let first = frame.rows[0].0;
        let mut signed_hash = None;
        for &(key, value) in &frame.rows {
            self.head = verify_row(&self.head, &mut self.books, key, value)?;
            if self.head.seqno == frame.signed_seqno {
                signed_hash = Some(self.head.hash);
            }
        }
        if let Some(dangling) = self.dangling {
            return Err(corrupt(dangling, CorruptReason::DanglingSignature));
        }
        match signed_hash {
            Some(hash) => {
                if !verify_batch(self.public_key, frame.signed_seqno, &hash, &frame.signature) {
                    return Err(OpenError::BadSignature {
                        seqno: frame.signed_seqno,
                    });
                }
                self.head_signed = frame.signed_seqno == self.head.seqno;
            }
            None if frame.signed_seqno > self.head.seqno => {
                self.head_signed = false;
                self.dangling = Some(frame.signed_seqno);
            }
            None => {
                return Err(corrupt(
                    frame.signed_seqno,
                    CorruptReason::DanglingSignature,
                ));
            }
        }
        Ok(first)
    }
}

/// Reads the frames from the header on, verifying each, until the first all-zero frame header
/// or the end of the file; then decides what follows: only zeros (the clean end), a torn last
/// frame (cut off), or damage followed by more data (corruption).
fn scan(file: &File, public_key: &PublicKey) -> Result<Scanned, OpenError> {
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(HEADER_LEN))?;
    let mut verifier = Verifier {
        public_key,
        books: Books::default(),
        head: Head {
            seqno: 0,
            hash: genesis_hash(public_key),
        },
        head_signed: true,
        dangling: None,
    };
    let mut index = Index::default();
    let mut offset = HEADER_LEN;
    let mut body = Vec::new();
    // Why the frame at `offset` is not a frame, when it is not the clean end.
    let mut bad: Option<(&'static str, Option<u64>)> = None;
    loop {
        if offset + FRAME_HEADER_LEN > file_len {
            if offset < file_len {
                bad = Some(("frame header cut off by the end of the file", None));
            }
            break;
        }
        let mut frame_header = [0u8; FRAME_HEADER_LEN as usize];
        reader.read_exact(&mut frame_header)?;
        if frame_header == [0; FRAME_HEADER_LEN as usize] {
            break;
        }
        let body_len = u64::from(u32::from_le_bytes(
            frame_header[..4].try_into().expect("4 bytes"),
        ));
        let crc = u32::from_le_bytes(frame_header[4..].try_into().expect("4 bytes"));
        let frame_end = offset + FRAME_HEADER_LEN + body_len;
        if body_len == 0 || body_len > MAX_FRAME_LEN || frame_end > file_len {
            bad = Some(("frame length beyond the file", None));
            break;
        }
        body.resize(body_len as usize, 0);
        reader.read_exact(&mut body)?;
        if frame_crc(&body) != crc {
            bad = Some(("frame checksum mismatch", Some(frame_end)));
            break;
        }
        let first = verifier.frame(offset, &body)?;
        index.frames.push((first, offset));
        offset = frame_end;
    }
    index.end = offset;
    drop(reader);

    // Everything after the last good frame.
    let mut tail = vec![0u8; (file_len - offset) as usize];
    file.read_exact_at(&mut tail, offset)?;
    let last_nonzero = tail.iter().rposition(|&b| b != 0);
    let torn = match (bad, last_nonzero) {
        (None, None) => None,
        (Some((problem, Some(frame_end))), Some(last)) => {
            // A whole frame that fails its checksum: the last commit, torn, only if nothing
            // but zeros follows it.
            if offset + last as u64 >= frame_end {
                return Err(corrupt(
                    verifier.head.seqno + 1,
                    CorruptReason::Frame {
                        offset,
                        problem: "a frame fails its checksum and more data follows it",
                    },
                ));
            }
            tracing::debug!(problem, "torn last frame");
            Some(last)
        }
        (_, Some(last)) => {
            // A frame header that is zero (its first page never reached the disk) or whose
            // length runs past the file, with bytes after it: a torn write, unless an intact
            // frame follows, which a crash cannot produce (the next commit starts only after
            // this one was written and synced).
            if let Some(at) = intact_frame_after(&tail, verifier.head.seqno) {
                return Err(corrupt(
                    verifier.head.seqno + 1,
                    CorruptReason::Frame {
                        offset: offset + at as u64,
                        problem: "an intact frame follows a damaged or missing one",
                    },
                ));
            }
            Some(last)
        }
        (Some(_), None) => None,
    };
    if verifier.dangling.is_some() || !verifier.head_signed {
        return Err(OpenError::UnsignedHead {
            seqno: verifier.head.seqno,
        });
    }
    Ok(Scanned {
        books: verifier.books,
        head: verifier.head,
        index,
        torn: torn.map(|last| Torn {
            offset,
            to: offset + last as u64 + 1,
        }),
    })
}

/// The position in `tail` (after its first byte) of a frame whose CRC matches and whose first
/// row continues the chain's seqnos, if any.
fn intact_frame_after(tail: &[u8], head_seqno: u64) -> Option<usize> {
    let header = FRAME_HEADER_LEN as usize;
    (1..tail.len().saturating_sub(header + BODY_FIXED_LEN)).find(|&at| {
        let Some(body_len) = read_u32(tail, at) else {
            return false;
        };
        let body_len = body_len as usize;
        if body_len < BODY_FIXED_LEN || body_len > tail.len() - at - header {
            return false;
        }
        let body = &tail[at + header..at + header + body_len];
        // Cheap filters before the CRC: one row at least, whose seqno lies ahead.
        let plausible = read_u32(body, 0).is_some_and(|count| count >= 1)
            && read_u64(body, 4).is_some_and(|seqno| seqno > head_seqno);
        plausible && read_u32(tail, at + 4) == Some(frame_crc(body))
    })
}

/// Migrates a redb ledger at `path`: verifies it exactly as the redb-based ledger did, writes
/// the same batches as frames to a new log, keeps the old file as `<path>.redb-old` and puts
/// the new one in its place. A crash at any point leaves either the old file at `path` (the
/// migration runs again) or the complete new one.
fn migrate(path: &Path, public_key: &PublicKey) -> Result<(), OpenError> {
    let (batches, head) = legacy::read_verified(path, public_key)?;
    let mut frames = Vec::new();
    for batch in &batches {
        let last = batch.rows.last().map_or(0, |(seqno, _)| *seqno);
        encode_frame(
            &mut frames,
            batch
                .rows
                .iter()
                .map(|(seqno, value)| (*seqno, value.as_slice())),
            last,
            &batch.signature,
        );
    }
    let old = sibling(path, ".redb-old");
    match std::fs::remove_file(&old) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error.into()),
    }
    // Two names for the old file first, then the new file atomically takes `path`.
    if std::fs::hard_link(path, &old).is_err() {
        std::fs::copy(path, &old)?;
        File::open(&old)?.sync_all()?;
    }
    sync_parent(path)?;
    write_new_file(path, public_key, &frames)?;
    tracing::warn!(
        path = %path.display(),
        old = %old.display(),
        records = head.seqno,
        batches = batches.len(),
        "migrated the ledger from the redb format to the log format; the old file is kept"
    );
    Ok(())
}

impl Appender {
    /// The log, for readers.
    pub(crate) fn log(&self) -> Arc<Log> {
        Arc::clone(&self.log)
    }

    /// Whether every commit is synced.
    pub(crate) fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// Writes one complete frame (from [`FrameBuilder`]) whose first record is `first_seqno`
    /// at the end of the log, with one `pwrite`, and syncs it when durable.
    pub(crate) fn append(&mut self, frame: &[u8], first_seqno: u64) -> std::io::Result<()> {
        let file = &self.log.file;
        let end = self.end + frame.len() as u64;
        if end > self.space.allocated.load(AtomicOrdering::Acquire) {
            // Grow by whole chunks of written zeros, synced once, so that commits into them
            // change no metadata and their fdatasync writes only the frame. Normally the
            // helper thread did this already; here it did not keep up (or a frame is huge).
            self.space.extend_to(file, end.div_ceil(CHUNK) * CHUNK)?;
        }
        file.write_all_at(frame, self.end)?;
        if self.durable {
            file.sync_data()?;
        }
        {
            let mut index = self.log.index.write().unwrap_or_else(|e| e.into_inner());
            index.frames.push((first_seqno, self.end));
            index.end = end;
        }
        self.end = end;
        self.prepare_next_chunk();
        Ok(())
    }

    /// Starts extending the file by a chunk in the background once less than half a chunk
    /// of prepared space is left. A failure there is only logged: the next commit that needs
    /// the space extends the file itself and reports the error to its callers.
    fn prepare_next_chunk(&mut self) {
        let allocated = self.space.allocated.load(AtomicOrdering::Acquire);
        if allocated.saturating_sub(self.end) >= CHUNK / 2
            || self.extender.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        let log = Arc::clone(&self.log);
        let space = Arc::clone(&self.space);
        let target = allocated + CHUNK;
        let started = std::thread::Builder::new()
            .name("ledger-extend".into())
            .spawn(move || {
                if let Err(error) = space.extend_to(&log.file, target) {
                    tracing::warn!(%error, target, "could not extend the ledger file ahead of need");
                }
            });
        match started {
            Ok(thread) => self.extender = Some(thread),
            Err(error) => tracing::warn!(%error, "could not start the ledger's extending thread"),
        }
    }

    /// Makes everything written durable.
    pub(crate) fn flush(&self) -> std::io::Result<()> {
        self.log.file.sync_data()
    }
}

impl Drop for Appender {
    /// No write to the file outlives the writer.
    fn drop(&mut self) {
        if let Some(thread) = self.extender.take() {
            let _ = thread.join();
        }
    }
}

impl Log {
    /// The frame holding `seqno`: its offset and end.
    fn locate(&self, seqno: u64) -> Option<(usize, u64, u64)> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let position = index.frames.partition_point(|&(first, _)| first <= seqno);
        let slot = position.checked_sub(1)?;
        let offset = index.frames[slot].1;
        let end = index.frames.get(slot + 1).map_or(index.end, |f| f.1);
        Some((slot, offset, end))
    }

    /// The frame at index `slot`, read back: offset and body.
    fn read_frame(&self, slot: usize) -> Result<Option<(u64, Vec<u8>)>, LedgerError> {
        let (offset, end) = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            let Some(&(_, offset)) = index.frames.get(slot) else {
                return Ok(None);
            };
            (
                offset,
                index.frames.get(slot + 1).map_or(index.end, |f| f.1),
            )
        };
        let mut body = vec![0u8; (end - offset - FRAME_HEADER_LEN) as usize];
        self.file
            .read_exact_at(&mut body, offset + FRAME_HEADER_LEN)
            .map_err(|e| LedgerError::Storage(storage(e)))?;
        Ok(Some((offset, body)))
    }

    /// The chain hash stored with record `seqno`.
    pub(crate) fn hash_at(&self, seqno: u64) -> Result<Option<[u8; 32]>, LedgerError> {
        let Some((slot, _, _)) = self.locate(seqno) else {
            return Ok(None);
        };
        let Some((offset, body)) = self.read_frame(slot)? else {
            return Ok(None);
        };
        let frame = parse_body(&body).map_err(|problem| damaged(offset, problem))?;
        Ok(frame
            .rows
            .iter()
            .find(|(s, _)| *s == seqno)
            .and_then(|(_, value)| value.get(..32))
            .and_then(|h| h.try_into().ok()))
    }

    /// Up to `limit` records from `from` on.
    pub(crate) fn records(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, LedgerError> {
        let mut out = Vec::new();
        let mut slot = self.locate(from.max(1)).map_or(0, |(slot, _, _)| slot);
        while out.len() < limit {
            let Some((offset, body)) = self.read_frame(slot)? else {
                break;
            };
            let frame = parse_body(&body).map_err(|problem| damaged(offset, problem))?;
            for &(seqno, value) in &frame.rows {
                if seqno < from || out.len() >= limit {
                    continue;
                }
                let hash: [u8; 32] = value
                    .get(..32)
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| damaged(offset, "short row"))?;
                let (_, record) =
                    Record::decode(&value[32..]).map_err(|_| damaged(offset, "bad record"))?;
                out.push(StoredRecord {
                    seqno,
                    hash,
                    signature: (seqno == frame.signed_seqno).then_some(frame.signature),
                    record,
                });
            }
            slot += 1;
        }
        Ok(out)
    }
}

fn damaged(offset: u64, problem: &str) -> LedgerError {
    LedgerError::Storage(format!("ledger frame at offset {offset} is damaged: {problem}").into())
}
