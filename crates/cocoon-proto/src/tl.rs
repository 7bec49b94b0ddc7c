//! TL binary encoding: primitive readers and writers, the CRC32 that names constructors, and the
//! traits every message implements.
//!
//! Everything here is little-endian and 4-byte aligned, as in the C++ reference. Decoding is
//! strict: it never panics, never allocates more than the input could possibly hold, and reports
//! malformed input as a [`TlError`].

/// Why a TL value could not be decoded.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TlError {
    /// The input ended before the value did.
    #[error("unexpected end of TL data: needed {needed} bytes, {remaining} left")]
    UnexpectedEof {
        /// How many bytes the next item needed.
        needed: usize,
        /// How many bytes were left.
        remaining: usize,
    },
    /// A boxed value started with a constructor id that the expected type does not have.
    #[error("unknown constructor {found:#010x} for {type_name}")]
    UnknownConstructor {
        /// The Rust type that was being decoded.
        type_name: &'static str,
        /// The constructor id found in the input.
        found: u32,
    },
    /// A `Bool` was neither `boolTrue` nor `boolFalse`.
    #[error("bad Bool constructor {0:#010x}")]
    BadBool(u32),
    /// The padding after a `bytes`/`string` value was not all zeros.
    #[error("non-zero padding after a TL string")]
    BadPadding,
    /// A `string` was not valid UTF-8.
    #[error("TL string is not valid UTF-8")]
    InvalidUtf8,
    /// A complete value was decoded but bytes were left over.
    #[error("{0} trailing bytes after TL value")]
    TrailingBytes(usize),
    /// A length prefix claims more bytes than could possibly follow.
    #[error("TL length {0} is too long")]
    TooLong(usize),
    /// A vector count was negative.
    #[error("negative TL vector length {0}")]
    NegativeLength(i32),
}

/// Constructor id of `boolTrue`.
pub const BOOL_TRUE: u32 = 0x997275b5;
/// Constructor id of `boolFalse`.
pub const BOOL_FALSE: u32 = 0xbc799737;

/// Byte-wise table for the IEEE CRC32 (reflected polynomial 0xEDB88320), built at compile time.
const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};

/// CRC32 (IEEE), usable in constants: a constructor id is the CRC32 of its normalised declaration.
pub const fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    let mut index = 0;
    while index < data.len() {
        crc = CRC32_TABLE[((crc ^ data[index] as u32) & 0xff) as usize] ^ (crc >> 8);
        index += 1;
    }
    !crc
}

/// A cursor over TL-encoded bytes.
#[derive(Debug, Clone)]
pub struct TlReader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> TlReader<'a> {
    /// Starts reading at the beginning of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, position: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.position
    }

    /// Succeeds only when every byte has been read.
    pub fn finish(&self) -> Result<(), TlError> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(TlError::TrailingBytes(left)),
        }
    }

    /// Takes the next `count` raw bytes.
    pub fn take(&mut self, count: usize) -> Result<&'a [u8], TlError> {
        let remaining = self.remaining();
        if count > remaining {
            return Err(TlError::UnexpectedEof {
                needed: count,
                remaining,
            });
        }
        let slice = &self.data[self.position..self.position + count];
        self.position += count;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TlError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    /// Reads an `int`.
    pub fn read_i32(&mut self) -> Result<i32, TlError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    /// Reads 4 bytes as an unsigned value (constructor ids, flags).
    pub fn read_u32(&mut self) -> Result<u32, TlError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Reads a `long`.
    pub fn read_i64(&mut self) -> Result<i64, TlError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// Reads a `double`.
    pub fn read_f64(&mut self) -> Result<f64, TlError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// Reads an `int128` as raw bytes.
    pub fn int128(&mut self) -> Result<[u8; 16], TlError> {
        self.array()
    }

    /// Reads an `int256` as raw bytes.
    pub fn int256(&mut self) -> Result<[u8; 32], TlError> {
        self.array()
    }

    /// Reads a `bytes` value without copying it.
    pub fn bytes_ref(&mut self) -> Result<&'a [u8], TlError> {
        let first = self.take(1)?[0];
        let (prefix_len, len) = match first {
            0..=253 => (1usize, usize::from(first)),
            254 => {
                let raw = self.take(3)?;
                (
                    4,
                    usize::from(raw[0]) | usize::from(raw[1]) << 8 | usize::from(raw[2]) << 16,
                )
            }
            255 => {
                // The long form (7-byte length) cannot occur inside a 16 MiB packet, but accepting
                // it keeps reading symmetrical with `write_bytes`.
                let raw = self.take(7)?;
                let mut wide = [0u8; 8];
                wide[..7].copy_from_slice(raw);
                let len = u64::from_le_bytes(wide);
                let len = usize::try_from(len).map_err(|_| TlError::TooLong(usize::MAX))?;
                (8, len)
            }
        };
        if len > self.remaining() {
            return Err(TlError::TooLong(len));
        }
        let data = self.take(len)?;
        let padding = (4 - (prefix_len + len) % 4) % 4;
        if self.take(padding)?.iter().any(|&byte| byte != 0) {
            return Err(TlError::BadPadding);
        }
        Ok(data)
    }

    /// Reads a `bytes` value into an owned buffer.
    pub fn bytes(&mut self) -> Result<Vec<u8>, TlError> {
        Ok(self.bytes_ref()?.to_vec())
    }

    /// Reads a `string`, which must be valid UTF-8.
    pub fn string(&mut self) -> Result<String, TlError> {
        let raw = self.bytes_ref()?;
        let text = std::str::from_utf8(raw).map_err(|_| TlError::InvalidUtf8)?;
        Ok(text.to_owned())
    }

    /// Reads a boxed `Bool`.
    pub fn bool(&mut self) -> Result<bool, TlError> {
        match self.read_u32()? {
            BOOL_TRUE => Ok(true),
            BOOL_FALSE => Ok(false),
            other => Err(TlError::BadBool(other)),
        }
    }

    /// Reads a bare `vector`: a count, then `count` elements read by `element`.
    pub fn vec<T>(
        &mut self,
        mut element: impl FnMut(&mut TlReader<'a>) -> Result<T, TlError>,
    ) -> Result<Vec<T>, TlError> {
        let count = self.read_i32()?;
        let count = usize::try_from(count).map_err(|_| TlError::NegativeLength(count))?;
        // Every TL value takes at least 4 bytes, so a count larger than a quarter of what is left
        // is a lie; refusing it here also bounds the allocation below.
        if count > self.remaining() / 4 {
            return Err(TlError::TooLong(count));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(element(self)?);
        }
        Ok(items)
    }
}

/// Writes an `int`.
pub fn write_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Writes 4 bytes of an unsigned value (constructor ids, flags).
pub fn write_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Writes a `long`.
pub fn write_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Writes a `double`.
pub fn write_f64(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Writes an `int128`.
pub fn write_int128(out: &mut Vec<u8>, value: &[u8; 16]) {
    out.extend_from_slice(value);
}

/// Writes an `int256`.
pub fn write_int256(out: &mut Vec<u8>, value: &[u8; 32]) {
    out.extend_from_slice(value);
}

/// Size on the wire of a `bytes` value of `len` bytes, prefix and padding included.
pub const fn bytes_encoded_len(len: usize) -> usize {
    let prefix = if len < 254 {
        1
    } else if len < (1 << 24) {
        4
    } else {
        8
    };
    (prefix + len + 3) & !3
}

/// Writes a `bytes` value: length prefix, data, zero padding to a multiple of 4.
pub fn write_bytes(out: &mut Vec<u8>, data: &[u8]) {
    let len = data.len();
    out.reserve(bytes_encoded_len(len));
    let prefix = if len < 254 {
        out.push(len as u8);
        1
    } else if len < (1 << 24) {
        out.push(254);
        out.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
        4
    } else {
        // Too large for any packet; written in the long form that TL parsers know.
        out.push(255);
        out.extend_from_slice(&(len as u64).to_le_bytes()[..7]);
        8
    };
    out.extend_from_slice(data);
    let padding = (4 - (prefix + len) % 4) % 4;
    out.extend_from_slice(&[0u8; 3][..padding]);
}

/// Writes a `string`.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    write_bytes(out, text.as_bytes());
}

/// Writes a boxed `Bool`.
pub fn write_bool(out: &mut Vec<u8>, value: bool) {
    write_u32(out, if value { BOOL_TRUE } else { BOOL_FALSE });
}

/// Writes a bare `vector` of bare objects.
pub fn write_vec<T: TlObject>(out: &mut Vec<u8>, items: &[T]) {
    // A vector long enough to overflow i32 cannot fit in memory as TL anyway.
    write_i32(out, items.len() as i32);
    for item in items {
        item.write_bare(out);
    }
}

/// A TL constructor with a fixed id (a "bare" object that can also be boxed).
pub trait TlObject: Sized {
    /// The constructor id: CRC32 of [`TlObject::SCHEMA`], or a pinned literal.
    const CONSTRUCTOR: u32;
    /// The normalised TL declaration this type implements.
    const SCHEMA: &'static str;
    /// Writes the fields without the constructor id.
    fn write_bare(&self, out: &mut Vec<u8>);
    /// Reads the fields (the constructor id has already been consumed or is implied).
    fn read_bare(r: &mut TlReader<'_>) -> Result<Self, TlError>;
}

/// Anything serialisable boxed: every [`TlObject`] and the polymorphic enums.
pub trait TlBoxed: Sized {
    /// Writes the constructor id, then the fields.
    fn write_boxed(&self, out: &mut Vec<u8>);
    /// Reads a constructor id and the fields it announces.
    fn read_boxed(r: &mut TlReader<'_>) -> Result<Self, TlError>;

    /// The boxed encoding as a fresh buffer.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_boxed(&mut out);
        out
    }

    /// Decodes a boxed value that must take up all of `data`.
    fn from_bytes(data: &[u8]) -> Result<Self, TlError> {
        let mut reader = TlReader::new(data);
        let value = Self::read_boxed(&mut reader)?;
        reader.finish()?;
        Ok(value)
    }
}

impl<T: TlObject> TlBoxed for T {
    fn write_boxed(&self, out: &mut Vec<u8>) {
        write_u32(out, T::CONSTRUCTOR);
        self.write_bare(out);
    }

    fn read_boxed(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        let found = r.read_u32()?;
        if found != T::CONSTRUCTOR {
            return Err(TlError::UnknownConstructor {
                type_name: std::any::type_name::<T>(),
                found,
            });
        }
        T::read_bare(r)
    }
}

/// The constructor id at the start of a boxed value, if there are at least 4 bytes.
pub fn peek_constructor(data: &[u8]) -> Option<u32> {
    let head: [u8; 4] = data.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(head))
}

/// A value that appears as a field of a TL object, encoded as its schema type says (bare for
/// lowercase types, boxed for capitalised ones). Used by the message definitions.
pub trait TlField: Sized {
    /// Writes the field.
    fn write_field(&self, out: &mut Vec<u8>);
    /// Reads the field.
    fn read_field(r: &mut TlReader<'_>) -> Result<Self, TlError>;
}

impl TlField for i32 {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_i32(out, *self);
    }
    fn read_field(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        r.read_i32()
    }
}

impl TlField for i64 {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_i64(out, *self);
    }
    fn read_field(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        r.read_i64()
    }
}

impl TlField for f64 {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_f64(out, *self);
    }
    fn read_field(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        r.read_f64()
    }
}

impl TlField for bool {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_bool(out, *self);
    }
    fn read_field(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        r.bool()
    }
}

impl TlField for [u8; 32] {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_int256(out, self);
    }
    fn read_field(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        r.int256()
    }
}

impl TlField for Vec<u8> {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_bytes(out, self);
    }
    fn read_field(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        r.bytes()
    }
}

impl TlField for String {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_string(out, self);
    }
    fn read_field(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        r.string()
    }
}

/// A field whose type is a lowercase constructor is written bare.
impl<T: TlObject> TlField for T {
    fn write_field(&self, out: &mut Vec<u8>) {
        self.write_bare(out);
    }
    fn read_field(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        T::read_bare(r)
    }
}

/// `(vector x)` of a lowercase constructor: bare vector of bare elements.
impl<T: TlObject> TlField for Vec<T> {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_vec(out, self);
    }
    fn read_field(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        r.vec(T::read_bare)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"tcp.ping id:long = tcp.Packet"), 0xbbe9_627c);
    }

    #[test]
    fn bytes_round_trip_at_prefix_boundaries() {
        for len in [
            0usize,
            1,
            2,
            3,
            4,
            252,
            253,
            254,
            255,
            256,
            1000,
            (1 << 24) - 1,
        ] {
            let data: Vec<u8> = (0..len).map(|index| index as u8).collect();
            let mut out = Vec::new();
            write_bytes(&mut out, &data);
            assert_eq!(out.len(), bytes_encoded_len(len));
            assert_eq!(out.len() % 4, 0);
            let mut reader = TlReader::new(&out);
            assert_eq!(reader.bytes_ref().unwrap(), &data[..]);
            reader.finish().unwrap();
        }
    }

    #[test]
    fn peek_needs_four_bytes() {
        assert_eq!(peek_constructor(&[1, 2, 3]), None);
        assert_eq!(peek_constructor(&[1, 0, 0, 0, 9]), Some(1));
    }
}
