//! Requests sealed to the attested worker, and its answer sealed back (issue 14's record
//! layer). A router in between sees only sizes.
//!
//! - The worker holds an HPKE key pair (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//!   ChaCha20-Poly1305) made inside its TEE; its public key goes into its attested claims.
//! - The client seals a request body to that key in HPKE's base mode. The `info` binds the
//!   request's context (model, request id), so a sealed body moved to another request or worker
//!   does not open. A key id in front names the key it is sealed to, so a worker tells a request
//!   sent to the wrong worker from one that does not open for its context.
//! - Both ends derive the answer's keys from that HPKE context (its exporter), so only the
//!   client that sealed the request can open the answer.
//! - The answer travels as AEAD records (ChaCha20-Poly1305). Each record's nonce carries its
//!   sequence number and its plaintext says whether it is the last, so a reordered, dropped,
//!   replayed or cut record is detected.
//! - Every record's plaintext is padded to a size bucket ([`Padding`]), so the record sizes do
//!   not tell the length of each piece of the answer.
//! - The answer's head travels in the clear (status, reason, headers: the proxy relays it as an
//!   `http.response` around the records), so its first record is a head record carrying the
//!   SHA-256 of that head ([`AnswerSealer::seal_head`]): a status or header changed on the way
//!   is refused ([`AnswerOpener::expect_head`]).
//!
//! Sealed request on the wire: key id (8 bytes, [`key_id`]), HPKE encapsulated key (32), HPKE
//! ciphertext (the plaintext of [`request_plaintext`] + 16-byte tag).
//!
//! Record on the wire: `u32` little-endian ciphertext length, then the ciphertext (plaintext +
//! 16-byte tag). Plaintext: `flags: u8` (bit 0: last, bit 1: head), `length: u32` LE, the data, zeros.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use sha2::{Digest, Sha256};

type Kem = X25519HkdfSha256;

/// Bytes of a worker's public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes of the encapsulated key in a sealed request (after the key id).
pub const ENCAPSULATED_LEN: usize = 32;
/// Bytes of the key id at the front of a sealed request.
pub const KEY_ID_LEN: usize = 8;
/// Bytes a sealed request carries besides the plaintext sealed in it: key id, encapsulated
/// key and tag.
pub const REQUEST_OVERHEAD: usize = KEY_ID_LEN + ENCAPSULATED_LEN + TAG_LEN;
/// Most data one answer record carries; longer pieces go in several records.
pub const MAX_RECORD_DATA: usize = 16 * 1024;
/// The AEAD tag.
const TAG_LEN: usize = 16;
/// `flags` and `length` in front of a record's data.
const RECORD_HEADER: usize = 5;
/// The largest plaintext of a record: a full record's header and data (no bucket is larger).
const MAX_PLAINTEXT: usize = MAX_RECORD_DATA + RECORD_HEADER;
/// The largest ciphertext a record may have.
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + TAG_LEN;
const LAST: u8 = 1;
/// A head record: its data is [`head_digest`] of the answer's clear head.
const HEAD: u8 = 2;
/// Records tried before and after the due one when a record does not open, to say what
/// happened to it (replayed, or later than due). Only a failing answer pays for it, once.
const DIAGNOSE_WINDOW: u64 = 64;

/// Why sealing or opening failed. Each tampering has its own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A key or encapsulation of the wrong size or form.
    #[error("malformed key: {0}")]
    Key(&'static str),
    /// The sealed request does not open with this key and context: sealed for another request
    /// or model, or changed.
    #[error(
        "the sealed request does not open here (sealed for another request or model, or changed)"
    )]
    Request,
    /// The sealed request names another key than this worker's: it was sent to the wrong
    /// worker.
    #[error("the sealed request is sealed to another worker's key, not this worker's")]
    OtherKey,
    /// An answer record failed authentication as this and as every nearby record of this
    /// answer: changed, or from another request's answer.
    #[error("answer record {0} failed authentication (changed, or from another answer)")]
    Record(u64),
    /// Where record `at` was due came a copy of record `copy_of`, opened before: replayed.
    #[error("answer record {at} is a copy of record {copy_of}, which arrived before (replayed)")]
    Replayed {
        /// The record that was due.
        at: u64,
        /// The earlier record it is a copy of.
        copy_of: u64,
    },
    /// Where record `at` was due came record `found`, a later one: the records between were
    /// dropped, or the answer's records were reordered.
    #[error("answer record {at} is record {found} of this answer: records before it were dropped or reordered")]
    OutOfOrder {
        /// The record that was due.
        at: u64,
        /// The later record that came instead.
        found: u64,
    },
    /// A record whose header lies about its length.
    #[error("answer record {0} is malformed: {1}")]
    Malformed(u64, &'static str),
    /// More after the last record.
    #[error("data after the answer's last record")]
    AfterLast,
    /// The answer's clear head (status, reason, headers) is not the one the worker sealed the
    /// digest of: changed on the way.
    #[error("the answer's status or headers were changed on the way (they are not what the worker sealed)")]
    HeadChanged,
    /// The answer did not begin with the head record the opener expects.
    #[error("the answer's first record does not vouch for its status and headers")]
    HeadMissing,
    /// The answer ended before its last record: cut short.
    #[error("the answer was cut short: it ended before its last record")]
    Truncated,
}

/// How sealed plaintexts are padded: each is grown to the smallest bucket that holds it, so
/// sizes on the wire come from a small set. Answer records use it (a worker's `answer_padding`),
/// and so do sealed requests (a client's `request_padding`). In a config: `"none"`, `"pow2"`
/// (the default smallest bucket) or `"pow2:BYTES"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Padding {
    /// No padding: the exact size of every piece shows.
    None,
    /// Powers of two from `min` bytes (a token's text fits the smallest one, so a streamed
    /// answer's records are all one size until a piece is larger), up to a full record; for a
    /// request, powers of two up to [`LARGE_REQUEST_STEP`], then multiples of it.
    PowersOfTwo {
        /// The smallest bucket.
        min: usize,
    },
}

/// The smallest bucket of answer records by default: a streamed token's record fits it.
pub const DEFAULT_ANSWER_BUCKET: usize = 256;
/// The smallest bucket of sealed requests by default: a short chat fits it.
pub const DEFAULT_REQUEST_BUCKET: usize = 1024;
/// Requests above this size are padded to a multiple of it, not to the next power of two.
pub const LARGE_REQUEST_STEP: usize = 64 << 10;
/// The largest smallest-bucket a config may ask for.
const MAX_MIN_BUCKET: usize = 1 << 20;

impl Default for Padding {
    fn default() -> Self {
        Padding::PowersOfTwo {
            min: DEFAULT_ANSWER_BUCKET,
        }
    }
}

impl TryFrom<String> for Padding {
    type Error = String;

    fn try_from(text: String) -> Result<Padding, String> {
        let rule =
            "padding is \"none\", \"pow2\" or \"pow2:BYTES\" (the smallest bucket, 1 to 1048576)";
        match text.as_str() {
            "none" => Ok(Padding::None),
            "pow2" => Ok(Padding::default()),
            other => match other.strip_prefix("pow2:").map(str::parse::<usize>) {
                Some(Ok(min)) if (1..=MAX_MIN_BUCKET).contains(&min) => {
                    Ok(Padding::PowersOfTwo { min })
                }
                _ => Err(format!("{rule}, not \"{other}\"")),
            },
        }
    }
}

impl From<Padding> for String {
    fn from(padding: Padding) -> String {
        match padding {
            Padding::None => "none".into(),
            Padding::PowersOfTwo { min } => format!("pow2:{min}"),
        }
    }
}

impl Padding {
    /// The default for sealed requests.
    pub fn requests() -> Padding {
        Padding::PowersOfTwo {
            min: DEFAULT_REQUEST_BUCKET,
        }
    }

    /// The padded plaintext size for `len` bytes of a record's header and data.
    fn bucket(self, len: usize) -> usize {
        match self {
            Padding::None => len,
            Padding::PowersOfTwo { min } => len
                .max(min.max(1))
                .next_power_of_two()
                .min(MAX_PLAINTEXT)
                .max(len),
        }
    }

    /// The padded size of a request plaintext of `len` bytes.
    pub fn request_bucket(self, len: usize) -> usize {
        match self {
            Padding::None => len,
            Padding::PowersOfTwo { .. } if len > LARGE_REQUEST_STEP => {
                len.div_ceil(LARGE_REQUEST_STEP) * LARGE_REQUEST_STEP
            }
            Padding::PowersOfTwo { min } => len.max(min.max(1)).next_power_of_two(),
        }
    }
}

/// How long a sealed request stays acceptable after the client sealed it (and, for clocks
/// that run ahead, before): a worker refuses older ones, and remembers the ids of the newer ones
/// it opened so a replay inside the window is refused too.
pub const REQUEST_MAX_AGE_SECS: u64 = 300;

/// Why a sealed request's plaintext was refused by the worker that opened it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FreshnessError {
    /// Shorter than its header.
    #[error("the sealed request is too short to carry its time and length")]
    Short,
    /// A length beyond the plaintext, or padding that is not zeros.
    #[error("the sealed request's length or padding is wrong")]
    Padding,
    /// Sealed too long ago, or too far in the future: a replay, or a wrong clock.
    #[error("the sealed request was made {age} s from now, outside ±{REQUEST_MAX_AGE_SECS} s (a replay, or a clock that is wrong)")]
    Stale {
        /// Seconds between its time and the worker's (negative: in the future).
        age: i64,
    },
}

/// The plaintext a client seals: the time it sealed it (Unix seconds, `u64` little-endian),
/// the request's length (`u32` little-endian), the boxed `http.request`, then zeros up to
/// `padding`'s bucket, so the sealed size tells the proxy only the bucket.
pub fn request_plaintext(sealed_at: u64, request: &[u8], padding: Padding) -> Vec<u8> {
    let size = padding.request_bucket(12 + request.len());
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&sealed_at.to_le_bytes());
    out.extend_from_slice(&(request.len() as u32).to_le_bytes());
    out.extend_from_slice(request);
    out.resize(size, 0);
    out
}

/// Splits an opened plaintext into its `http.request`, refusing one sealed outside
/// [`REQUEST_MAX_AGE_SECS`] of `now` (Unix seconds), or whose length or padding is wrong.
pub fn fresh_request(plaintext: &[u8], now: u64) -> Result<&[u8], FreshnessError> {
    let (time, rest) = plaintext
        .split_first_chunk::<8>()
        .ok_or(FreshnessError::Short)?;
    let (length, rest) = rest.split_first_chunk::<4>().ok_or(FreshnessError::Short)?;
    let length = u32::from_le_bytes(*length) as usize;
    if length > rest.len() || rest[length..].iter().any(|&b| b != 0) {
        return Err(FreshnessError::Padding);
    }
    let sealed_at = u64::from_le_bytes(*time);
    let age = i64::try_from(now as i128 - sealed_at as i128).unwrap_or(i64::MIN);
    if age.unsigned_abs() > REQUEST_MAX_AGE_SECS {
        return Err(FreshnessError::Stale { age });
    }
    Ok(&rest[..length])
}

/// What a request is sealed for: binds the sealed body to one request of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext<'a> {
    /// The model the request names in the clear.
    pub model: &'a str,
    /// The request id.
    pub request_id: [u8; 32],
}

impl RequestContext<'_> {
    fn info(&self) -> Vec<u8> {
        let mut info = b"cocoon sealed request v1\0".to_vec();
        info.extend_from_slice(&(self.model.len() as u32).to_le_bytes());
        info.extend_from_slice(self.model.as_bytes());
        info.extend_from_slice(&self.request_id);
        info
    }
}

/// A worker's key pair for sealed requests.
pub struct WorkerKey {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: <Kem as hpke::Kem>::PublicKey,
}

impl std::fmt::Debug for WorkerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerKey")
            .field("public", &crate::hex(&self.public_key()))
            .finish_non_exhaustive()
    }
}

impl WorkerKey {
    /// A fresh key pair from the operating system's randomness.
    pub fn generate() -> WorkerKey {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .expect("the system's randomness is available");
        WorkerKey::from_seed(&seed)
    }

    /// The key pair derived from `seed` (HPKE's `DeriveKeyPair`), for tests and fixtures.
    pub fn from_seed(seed: &[u8; 32]) -> WorkerKey {
        let (private, public) = Kem::derive_keypair(seed);
        WorkerKey { private, public }
    }

    /// The public key, what the worker's claims carry.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(&self.public.to_bytes());
        out
    }

    /// Opens a request sealed to this key for `context`: the body, and the sealer for its answer.
    pub fn open_request(
        &self,
        context: &RequestContext<'_>,
        sealed: &[u8],
    ) -> Result<(Vec<u8>, AnswerSealer), SealError> {
        if sealed.len() < REQUEST_OVERHEAD {
            return Err(SealError::Request);
        }
        let (id, sealed) = sealed.split_at(KEY_ID_LEN);
        if id != key_id(&self.public_key()) {
            return Err(SealError::OtherKey);
        }
        let (encapsulated, ciphertext) = sealed.split_at(ENCAPSULATED_LEN);
        let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapsulated)
            .map_err(|_| SealError::Key("encapsulated key"))?;
        let mut receiver = hpke::setup_receiver::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.private,
            &encapsulated,
            &context.info(),
        )
        .map_err(|_| SealError::Request)?;
        let body = receiver
            .open(ciphertext, b"")
            .map_err(|_| SealError::Request)?;
        let keys = AnswerKeys::export(|label, out| receiver.export(label, out).is_ok())?;
        Ok((body, AnswerSealer::new(keys)))
    }
}

/// Seals `body` to the worker key `public_key` for `context`: the sealed request, and the
/// opener for its answer.
pub fn seal_request(
    public_key: &[u8; PUBLIC_KEY_LEN],
    context: &RequestContext<'_>,
    body: &[u8],
) -> Result<(Vec<u8>, AnswerOpener), SealError> {
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(public_key)
        .map_err(|_| SealError::Key("worker public key"))?;
    let mut rng = rand::rngs::OsRng;
    let (encapsulated, mut sender) = hpke::setup_sender::<ChaCha20Poly1305, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        &public,
        &context.info(),
        &mut rng,
    )
    .map_err(|_| SealError::Key("worker public key"))?;
    let ciphertext = sender
        .seal(body, b"")
        .map_err(|_| SealError::Key("sealing failed"))?;
    let keys = AnswerKeys::export(|label, out| sender.export(label, out).is_ok())?;
    let mut sealed = key_id(public_key).to_vec();
    sealed.extend_from_slice(&encapsulated.to_bytes());
    sealed.extend_from_slice(&ciphertext);
    Ok((sealed, AnswerOpener::new(keys)))
}

/// The id a sealed request names its worker key by: the first bytes of its SHA-256 under a
/// label. Not secret (the proxy knows which worker a request is sealed to); it only lets the
/// worker tell "not for my key" from "not for this request".
pub fn key_id(public_key: &[u8; PUBLIC_KEY_LEN]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::new()
        .chain_update(b"cocoon sealing key id\0")
        .chain_update(public_key)
        .finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// The answer's key and nonce base, exported from the request's HPKE context by both ends, and
/// the salt of its hash in a receipt ([`crate::receipt`]): a proxy that relays the receipt cannot
/// test a guessed answer against it.
struct AnswerKeys {
    key: LessSafeKey,
    nonce: [u8; 12],
    salt: [u8; 32],
}

impl AnswerKeys {
    fn export(mut export: impl FnMut(&[u8], &mut [u8]) -> bool) -> Result<AnswerKeys, SealError> {
        let mut key = [0u8; 32];
        let mut nonce = [0u8; 12];
        let mut salt = [0u8; 32];
        if !export(b"cocoon answer key", &mut key)
            || !export(b"cocoon answer nonce", &mut nonce)
            || !export(b"cocoon receipt salt", &mut salt)
        {
            return Err(SealError::Key("exporting the answer keys"));
        }
        let key =
            UnboundKey::new(&CHACHA20_POLY1305, &key).map_err(|_| SealError::Key("answer key"))?;
        Ok(AnswerKeys {
            key: LessSafeKey::new(key),
            nonce,
            salt,
        })
    }

    /// The running hash of an answer's plaintext, salted.
    fn answer_hasher(&self) -> Sha256 {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher
    }

    /// The nonce of record `seq`: the base with the sequence number XORed into its last 8 bytes.
    fn nonce(&self, seq: u64) -> Nonce {
        let mut nonce = self.nonce;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        Nonce::assume_unique_for_key(nonce)
    }
}

impl std::fmt::Debug for AnswerSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerSealer")
            .field("seq", &self.seq)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AnswerOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerOpener").finish_non_exhaustive()
    }
}

/// SHA-256 of an answer's head as it travels in the clear: the `http.response` without its
/// payload (status, reason, headers, version).
fn head_digest(head: &cocoon_proto::HttpResponse) -> [u8; 32] {
    use cocoon_proto::TlBoxed as _;
    let clear = cocoon_proto::HttpResponse {
        payload: Vec::new(),
        ..head.clone()
    };
    Sha256::digest(clear.to_bytes()).into()
}

/// Why `ciphertext`, due as record `at`, did not open: it opens as a record that came before
/// (replayed) or as a later one (the ones between dropped, or reordered), or as none near
/// (changed, or another answer's).
fn diagnose(keys: &AnswerKeys, at: u64, ciphertext: &[u8]) -> SealError {
    let opens_as = |seq: u64| {
        let mut copy = ciphertext.to_vec();
        keys.key
            .open_in_place(keys.nonce(seq), Aad::empty(), &mut copy)
            .is_ok()
    };
    if let Some(copy_of) = (at.saturating_sub(DIAGNOSE_WINDOW)..at)
        .rev()
        .find(|&seq| opens_as(seq))
    {
        return SealError::Replayed { at, copy_of };
    }
    if let Some(found) =
        (at.saturating_add(1)..=at.saturating_add(DIAGNOSE_WINDOW)).find(|&seq| opens_as(seq))
    {
        return SealError::OutOfOrder { at, found };
    }
    SealError::Record(at)
}

/// The worker's side of an answer: seals its pieces as records, in order.
pub struct AnswerSealer {
    keys: AnswerKeys,
    seq: u64,
    done: bool,
    padding: Padding,
    hasher: Sha256,
}

impl AnswerSealer {
    fn new(keys: AnswerKeys) -> AnswerSealer {
        AnswerSealer {
            hasher: keys.answer_hasher(),
            keys,
            seq: 0,
            done: false,
            padding: Padding::default(),
        }
    }

    /// Whether the answer's last record was sealed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// SHA-256 of the receipt salt and every byte sealed so far: a receipt's answer hash.
    pub fn answer_hash(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }

    /// Uses `padding` for the records sealed from now on.
    pub fn with_padding(mut self, padding: Padding) -> AnswerSealer {
        self.padding = padding;
        self
    }

    /// Appends the head record to `out`: it vouches for `head`'s status, reason and headers
    /// (its payload is not read), which travel in the clear. It is an answer's first record.
    pub fn seal_head(&mut self, head: &cocoon_proto::HttpResponse, out: &mut Vec<u8>) {
        assert!(self.seq == 0, "the head record is an answer's first");
        self.seal_record_flagged(&head_digest(head), HEAD, out);
    }

    /// Appends `data` to `out` as records (several when it is longer than
    /// [`MAX_RECORD_DATA`]); `last` marks the answer's end. Nothing may follow the last record.
    pub fn seal(&mut self, data: &[u8], last: bool, out: &mut Vec<u8>) {
        assert!(!self.done, "an answer has one last record");
        self.hasher.update(data);
        let mut pieces = data.chunks(MAX_RECORD_DATA).peekable();
        if pieces.peek().is_none() {
            self.seal_record(&[], last, out);
        }
        while let Some(piece) = pieces.next() {
            let is_last = last && pieces.peek().is_none();
            self.seal_record(piece, is_last, out);
        }
        self.done = last;
    }

    fn seal_record(&mut self, data: &[u8], last: bool, out: &mut Vec<u8>) {
        self.seal_record_flagged(data, if last { LAST } else { 0 }, out);
    }

    fn seal_record_flagged(&mut self, data: &[u8], flags: u8, out: &mut Vec<u8>) {
        let size = self.padding.bucket(RECORD_HEADER + data.len());
        let mut record = Vec::with_capacity(size + TAG_LEN);
        record.push(flags);
        record.extend_from_slice(&(data.len() as u32).to_le_bytes());
        record.extend_from_slice(data);
        record.resize(size, 0);
        self.keys
            .key
            .seal_in_place_append_tag(self.keys.nonce(self.seq), Aad::empty(), &mut record)
            .expect("a record is far below ChaCha20-Poly1305's limit");
        self.seq += 1;
        out.extend_from_slice(&(record.len() as u32).to_le_bytes());
        out.extend_from_slice(&record);
    }
}

/// The client's side of an answer: takes the bytes as they arrive, in any split, and gives back
/// the data of each record once it is authentic and in order.
pub struct AnswerOpener {
    keys: AnswerKeys,
    seq: u64,
    pending: Vec<u8>,
    done: bool,
    hasher: Sha256,
    /// The digest the head record must carry, once [`AnswerOpener::expect_head`] was told the
    /// head; `None` after the head record opened (or when no head is expected).
    head: Option<[u8; 32]>,
}

impl AnswerOpener {
    fn new(keys: AnswerKeys) -> AnswerOpener {
        AnswerOpener {
            hasher: keys.answer_hasher(),
            keys,
            seq: 0,
            pending: Vec::new(),
            done: false,
            head: None,
        }
    }

    /// The answer's head as it arrived in the clear: its first record must be the head record
    /// vouching for it (status, reason, headers; the payload is not read). Called before the
    /// first bytes are pushed.
    pub fn expect_head(&mut self, head: &cocoon_proto::HttpResponse) {
        if self.seq == 0 {
            self.head = Some(head_digest(head));
        }
    }

    /// SHA-256 of the receipt salt and every byte opened so far: what a receipt's answer hash
    /// must be once the answer is done.
    pub fn answer_hash(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }

    /// Takes more bytes; appends the data of every complete record to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        if self.done && !bytes.is_empty() {
            return Err(SealError::AfterLast);
        }
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while self.pending.len() - start >= 4 {
            let len = u32::from_le_bytes(
                self.pending[start..start + 4]
                    .try_into()
                    .expect("four bytes"),
            ) as usize;
            if !(RECORD_HEADER + TAG_LEN..=MAX_CIPHERTEXT).contains(&len) {
                return Err(SealError::Malformed(self.seq, "record length out of range"));
            }
            if self.pending.len() - start < 4 + len {
                break;
            }
            if self.done {
                return Err(SealError::AfterLast);
            }
            let record = &mut self.pending[start + 4..start + 4 + len];
            // Kept to say what a record that fails was: opening overwrites it.
            let ciphertext = record.to_vec();
            let plain = self
                .keys
                .key
                .open_in_place(self.keys.nonce(self.seq), Aad::empty(), record)
                .map_err(|_| diagnose(&self.keys, self.seq, &ciphertext))?;
            let flags = plain[0];
            let data_len =
                u32::from_le_bytes(plain[1..RECORD_HEADER].try_into().expect("four bytes"))
                    as usize;
            if data_len > plain.len() - RECORD_HEADER || flags & !(LAST | HEAD) != 0 {
                return Err(SealError::Malformed(
                    self.seq,
                    "header does not fit the record",
                ));
            }
            let data = &plain[RECORD_HEADER..RECORD_HEADER + data_len];
            match (self.head.take(), flags & HEAD != 0) {
                (Some(expected), true) if flags & LAST == 0 => {
                    if data != expected {
                        return Err(SealError::HeadChanged);
                    }
                }
                (Some(_), _) => return Err(SealError::HeadMissing),
                (None, true) => {
                    return Err(SealError::Malformed(self.seq, "a head record out of place"))
                }
                (None, false) => {
                    self.hasher.update(data);
                    out.extend_from_slice(data);
                }
            }
            self.seq += 1;
            self.done = flags & LAST != 0;
            start += 4 + len;
        }
        self.pending.drain(..start);
        if self.done && !self.pending.is_empty() {
            return Err(SealError::AfterLast);
        }
        Ok(())
    }

    /// Whether the last record arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Ends the answer: an error unless its last record arrived and nothing is left over.
    pub fn finish(&self) -> Result<(), SealError> {
        if self.done && self.pending.is_empty() {
            Ok(())
        } else {
            Err(SealError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MODEL: &str = "SmolLM2-135M-Instruct";

    fn context(id: u8) -> RequestContext<'static> {
        RequestContext {
            model: MODEL,
            request_id: [id; 32],
        }
    }

    #[test]
    fn a_request_is_fresh_only_within_its_window() {
        let plaintext = request_plaintext(1_000, b"request", Padding::None);
        assert_eq!(fresh_request(&plaintext, 1_000).unwrap(), b"request");
        assert_eq!(fresh_request(&plaintext, 1_300).unwrap(), b"request");
        assert_eq!(fresh_request(&plaintext, 700).unwrap(), b"request");
        assert_eq!(
            fresh_request(&plaintext, 1_301),
            Err(FreshnessError::Stale { age: 301 })
        );
        assert_eq!(
            fresh_request(&plaintext, 699),
            Err(FreshnessError::Stale { age: -301 })
        );
        assert_eq!(fresh_request(&[1; 7], 0), Err(FreshnessError::Short));
        let far = request_plaintext(u64::MAX, b"", Padding::None);
        assert!(matches!(
            fresh_request(&far, 0),
            Err(FreshnessError::Stale { .. })
        ));
    }

    /// A sealed request opened by the worker, and both ends of its answer.
    fn pair(body: &[u8]) -> (Vec<u8>, AnswerSealer, AnswerOpener) {
        let worker = WorkerKey::from_seed(&[7; 32]);
        let (sealed, opener) = seal_request(&worker.public_key(), &context(1), body).unwrap();
        let (opened, sealer) = worker.open_request(&context(1), &sealed).unwrap();
        (opened, sealer, opener)
    }

    fn answer(sealer: &mut AnswerSealer, pieces: &[&[u8]]) -> Vec<u8> {
        let mut wire = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            sealer.seal(piece, i + 1 == pieces.len(), &mut wire);
        }
        wire
    }

    #[test]
    fn a_request_opens_only_for_its_worker_and_its_context() {
        let worker = WorkerKey::from_seed(&[7; 32]);
        let other = WorkerKey::from_seed(&[8; 32]);
        let body = br#"{"model":"m","messages":[]}"#;
        let (sealed, _) = seal_request(&worker.public_key(), &context(1), body).unwrap();
        assert_eq!(worker.open_request(&context(1), &sealed).unwrap().0, body);
        assert_eq!(
            other.open_request(&context(1), &sealed).err(),
            Some(SealError::OtherKey),
            "another worker's key"
        );
        let mut renamed = sealed.clone();
        renamed[..KEY_ID_LEN].copy_from_slice(&key_id(&other.public_key()));
        assert_eq!(
            other.open_request(&context(1), &renamed).err(),
            Some(SealError::Request),
            "another worker's request under this worker's key id"
        );
        assert_eq!(
            worker.open_request(&context(2), &sealed).err(),
            Some(SealError::Request),
            "moved to another request"
        );
        let other_model = RequestContext {
            model: "other",
            request_id: [1; 32],
        };
        assert_eq!(
            worker.open_request(&other_model, &sealed).err(),
            Some(SealError::Request),
            "re-targeted to another model"
        );
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(
            worker.open_request(&context(1), &changed).err(),
            Some(SealError::Request)
        );
        assert_eq!(
            worker.open_request(&context(1), &sealed[..20]).err(),
            Some(SealError::Request)
        );
        let (again, _) = seal_request(&worker.public_key(), &context(1), body).unwrap();
        assert_ne!(again, sealed, "every sealing is fresh");
    }

    #[test]
    fn requests_are_padded_to_buckets_and_their_padding_is_checked() {
        let sizes: Vec<usize> = [1usize, 500, 1_000, 1_013, 5_000, 70_000, 200_000]
            .iter()
            .map(|n| request_plaintext(7, &vec![b'x'; *n], Padding::requests()).len())
            .collect();
        assert_eq!(
            sizes,
            [1024, 1024, 1024, 2048, 8192, 131_072, 262_144],
            "powers of two from 1 KiB, then multiples of 64 KiB"
        );
        for n in [0usize, 3, 1_000, 70_000] {
            let request = vec![b'r'; n];
            let plaintext = request_plaintext(7, &request, Padding::requests());
            assert_eq!(fresh_request(&plaintext, 7).unwrap(), request);
        }
        let mut dirty = request_plaintext(7, b"abc", Padding::requests());
        *dirty.last_mut().unwrap() = 1;
        assert_eq!(fresh_request(&dirty, 7), Err(FreshnessError::Padding));
        let mut long = request_plaintext(7, b"abc", Padding::None);
        long[8..12].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(fresh_request(&long, 7), Err(FreshnessError::Padding));
        assert_eq!(fresh_request(&[0; 11], 7), Err(FreshnessError::Short));
    }

    #[test]
    fn padding_reads_from_configs() {
        let parse = |text: &str| Padding::try_from(text.to_string());
        assert_eq!(parse("none"), Ok(Padding::None));
        assert_eq!(parse("pow2"), Ok(Padding::default()));
        assert_eq!(parse("pow2:4096"), Ok(Padding::PowersOfTwo { min: 4096 }));
        for bad in ["pow2:0", "pow2:x", "pow3", "", "pow2:2000000"] {
            assert!(parse(bad).unwrap_err().contains("padding is"), "{bad}");
        }
        assert_eq!(String::from(Padding::PowersOfTwo { min: 512 }), "pow2:512");
    }

    #[test]
    fn the_answer_hash_is_salted_per_request() {
        let (_, mut first, _) = pair(b"q");
        let (_, mut second, _) = pair(b"q");
        let mut wire = Vec::new();
        first.seal(b"Paris", true, &mut wire);
        second.seal(b"Paris", true, &mut wire);
        assert_ne!(
            first.answer_hash(),
            second.answer_hash(),
            "the same answer hashes differently in each request"
        );
        let plain: [u8; 32] = Sha256::digest(b"Paris").into();
        assert_ne!(first.answer_hash(), plain, "not the bare hash");
    }

    #[test]
    fn padding_hides_piece_sizes_in_buckets() {
        let (_, mut sealer, _) = pair(b"q");
        let mut sizes = Vec::new();
        for piece in [&b"a"[..], b"Paris", b" is the capital of France and more"] {
            let mut wire = Vec::new();
            sealer.seal(piece, false, &mut wire);
            sizes.push(wire.len());
        }
        assert!(
            sizes.iter().all(|s| *s == sizes[0]),
            "one size for token-sized pieces: {sizes:?}"
        );
        let mut big = Vec::new();
        sealer.seal(&[b'x'; 300], false, &mut big);
        assert_eq!(big.len(), 4 + 512 + TAG_LEN, "the next power of two");
        let mut full = Vec::new();
        sealer.seal(&[b'x'; MAX_RECORD_DATA], false, &mut full);
        assert_eq!(
            full.len(),
            4 + MAX_CIPHERTEXT,
            "a full record is not padded further"
        );
        let (_, sealer, _) = pair(b"q");
        let mut sealer = sealer.with_padding(Padding::None);
        let mut exact = Vec::new();
        sealer.seal(b"abc", true, &mut exact);
        assert_eq!(exact.len(), 4 + RECORD_HEADER + 3 + TAG_LEN);
    }

    /// Three records of one answer, one wire chunk each, and the opener that matches them.
    fn three_records() -> (Vec<Vec<u8>>, AnswerOpener) {
        let (_, mut sealer, opener) = pair(b"q");
        let records = [&b"one"[..], b"two", b"three"]
            .iter()
            .enumerate()
            .map(|(i, piece)| {
                let mut wire = Vec::new();
                sealer.seal(piece, i == 2, &mut wire);
                wire
            })
            .collect();
        (records, opener)
    }

    fn open_in_order(order: &[usize]) -> Result<Vec<u8>, SealError> {
        let (records, mut opener) = three_records();
        let mut out = Vec::new();
        for &i in order {
            opener.push(&records[i], &mut out)?;
        }
        opener.finish()?;
        Ok(out)
    }

    #[test]
    fn reordered_dropped_replayed_cut_or_foreign_records_are_refused() {
        assert_eq!(open_in_order(&[0, 1, 2]).unwrap(), b"onetwothree");
        assert_eq!(
            open_in_order(&[1, 0, 2]),
            Err(SealError::OutOfOrder { at: 0, found: 1 }),
            "reordered"
        );
        assert_eq!(
            open_in_order(&[0, 2]),
            Err(SealError::OutOfOrder { at: 1, found: 2 }),
            "dropped"
        );
        assert_eq!(
            open_in_order(&[0, 0, 1, 2]),
            Err(SealError::Replayed { at: 1, copy_of: 0 }),
            "replayed"
        );
        assert_eq!(
            open_in_order(&[0, 1, 1, 2]),
            Err(SealError::Replayed { at: 2, copy_of: 1 }),
            "replayed later"
        );
        assert_eq!(
            open_in_order(&[0, 1]),
            Err(SealError::Truncated),
            "cut before the last"
        );
        assert_eq!(
            open_in_order(&[0, 1, 2, 2]),
            Err(SealError::AfterLast),
            "replayed last"
        );
        // A record of another request's answer.
        let (foreign, _) = three_records();
        let (_, mut opener) = three_records();
        let mut out = Vec::new();
        assert_eq!(
            opener.push(&foreign[0], &mut out),
            Err(SealError::Record(0))
        );
        // A changed record opens as no record of its answer.
        let (mut records, mut opener) = three_records();
        *records[1].last_mut().unwrap() ^= 1;
        opener.push(&records[0], &mut out).unwrap();
        assert_eq!(
            opener.push(&records[1], &mut out),
            Err(SealError::Record(1))
        );
        // A length that cannot be a record.
        let (_, mut opener) = three_records();
        assert!(matches!(
            opener.push(&u32::MAX.to_le_bytes(), &mut out),
            Err(SealError::Malformed(0, _))
        ));
    }

    fn response(status: i32, content_type: &str) -> cocoon_proto::HttpResponse {
        cocoon_proto::HttpResponse {
            http_version: "HTTP/1.1".into(),
            status_code: status,
            reason: "OK".into(),
            headers: vec![cocoon_proto::HttpHeader {
                name: "Content-Type".into(),
                value: content_type.into(),
            }],
            payload: b"not read".to_vec(),
        }
    }

    /// An answer with a head record for `head`, opened as arriving with `arrived`.
    fn open_with_head(
        head: Option<&cocoon_proto::HttpResponse>,
        arrived: Option<&cocoon_proto::HttpResponse>,
    ) -> Result<Vec<u8>, SealError> {
        let (_, mut sealer, mut opener) = pair(b"q");
        let mut wire = Vec::new();
        if let Some(head) = head {
            sealer.seal_head(head, &mut wire);
        }
        sealer.seal(b"{}", true, &mut wire);
        if let Some(arrived) = arrived {
            opener.expect_head(arrived);
        }
        let mut out = Vec::new();
        opener.push(&wire, &mut out)?;
        opener.finish()?;
        Ok(out)
    }

    #[test]
    fn the_head_record_vouches_for_the_clear_status_and_headers() {
        let head = response(200, "application/json");
        let mut other_payload = head.clone();
        other_payload.payload.clear();
        assert_eq!(
            open_with_head(Some(&head), Some(&other_payload)).unwrap(),
            b"{}"
        );
        assert_eq!(
            open_with_head(Some(&head), Some(&response(500, "application/json"))),
            Err(SealError::HeadChanged),
            "status"
        );
        assert_eq!(
            open_with_head(Some(&head), Some(&response(200, "text/event-stream"))),
            Err(SealError::HeadChanged),
            "header"
        );
        assert_eq!(
            open_with_head(None, Some(&head)),
            Err(SealError::HeadMissing),
            "no head record"
        );
        assert!(matches!(
            open_with_head(Some(&head), None),
            Err(SealError::Malformed(0, _))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_split_of_an_answer_round_trips(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40_000), 1..5),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let (_, mut sealer, mut opener) = pair(b"q");
            let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            let wire = answer(&mut sealer, &refs);
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            at.push(0);
            at.push(wire.len());
            at.sort_unstable();
            let mut out = Vec::new();
            for window in at.windows(2) {
                opener.push(&wire[window[0]..window[1]], &mut out).unwrap();
            }
            opener.finish().unwrap();
            prop_assert_eq!(opener.answer_hash(), sealer.answer_hash(), "both ends hash the same answer");
            prop_assert_eq!(out, pieces.concat());
        }

        #[test]
        fn any_changed_byte_is_caught(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2_000), 1..4),
            position in any::<prop::sample::Index>(),
            flip in 1u8..,
        ) {
            let (_, mut sealer, mut opener) = pair(b"q");
            let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            let mut wire = answer(&mut sealer, &refs);
            let at = position.index(wire.len());
            wire[at] ^= flip;
            let mut out = Vec::new();
            let result = opener.push(&wire, &mut out).and_then(|()| opener.finish());
            prop_assert!(result.is_err(), "a change at byte {} went unnoticed", at);
        }
    }
}
