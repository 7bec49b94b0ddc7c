//! The binary layout shared by the journal's records and the snapshot file: little-endian
//! integers, byte strings with a `u32` length in front, addresses as workchain + 32 bytes.
//! Reading never panics and never trusts a length beyond the bytes that are left.

use crate::Address;

/// Why bytes did not decode; the caller adds the file and offset.
pub(crate) type DecodeResult<T> = Result<T, &'static str>;

/// Appends values to a byte buffer.
#[derive(Default)]
pub(crate) struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn i32(&mut self, value: i32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u128(&mut self, value: u128) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// A byte string: its length as `u32`, then the bytes. Callers keep inputs far below 4 GiB
    /// (records are bounded by `MAX_RECORD`), so the length always fits.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        self.raw(bytes);
    }

    pub(crate) fn address(&mut self, address: &Address) {
        self.bytes.push(address.workchain as u8);
        self.raw(&address.hash);
    }

    pub(crate) fn option_address(&mut self, address: Option<&Address>) {
        match address {
            None => self.u8(0),
            Some(address) => {
                self.u8(1);
                self.address(address);
            }
        }
    }

    pub(crate) fn option_bytes(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            None => self.u8(0),
            Some(bytes) => {
                self.u8(1);
                self.bytes(bytes);
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads values back from a byte slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn take(&mut self, len: usize) -> DecodeResult<&'a [u8]> {
        if len > self.bytes.len() {
            return Err("truncated");
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn bool(&mut self) -> DecodeResult<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("a flag that is neither 0 nor 1"),
        }
    }

    pub(crate) fn u32(&mut self) -> DecodeResult<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> DecodeResult<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> DecodeResult<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn u128(&mut self) -> DecodeResult<u128> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    pub(crate) fn hash(&mut self) -> DecodeResult<[u8; 32]> {
        self.array()
    }

    pub(crate) fn bytes(&mut self) -> DecodeResult<Vec<u8>> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }

    pub(crate) fn address(&mut self) -> DecodeResult<Address> {
        let workchain = self.u8()? as i8;
        Ok(Address {
            workchain,
            hash: self.hash()?,
        })
    }

    pub(crate) fn option_address(&mut self) -> DecodeResult<Option<Address>> {
        Ok(if self.bool()? {
            Some(self.address()?)
        } else {
            None
        })
    }

    pub(crate) fn option_bytes(&mut self) -> DecodeResult<Option<Vec<u8>>> {
        Ok(if self.bool()? {
            Some(self.bytes()?)
        } else {
            None
        })
    }

    /// A count of items that each take at least `min_item` bytes, checked against what is left
    /// so that a corrupt count cannot make the caller reserve memory the input cannot fill.
    pub(crate) fn count(&mut self, min_item: usize) -> DecodeResult<usize> {
        let count = self.u32()? as usize;
        if count.saturating_mul(min_item.max(1)) > self.bytes.len() {
            return Err("a count larger than the bytes that follow");
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_short_input_is_an_error() {
        let address = Address {
            workchain: -1,
            hash: [9; 32],
        };
        let mut writer = Writer::default();
        writer.u8(7);
        writer.bool(true);
        writer.u32(0xdead_beef);
        writer.i32(-5);
        writer.u64(u64::MAX);
        writer.u128(1 << 100);
        writer.bytes(b"abc");
        writer.address(&address);
        writer.option_address(None);
        writer.option_bytes(Some(b""));
        let bytes = writer.finish();
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.u8(), Ok(7));
        assert_eq!(reader.bool(), Ok(true));
        assert_eq!(reader.u32(), Ok(0xdead_beef));
        assert_eq!(reader.i32(), Ok(-5));
        assert_eq!(reader.u64(), Ok(u64::MAX));
        assert_eq!(reader.u128(), Ok(1 << 100));
        assert_eq!(reader.bytes(), Ok(b"abc".to_vec()));
        assert_eq!(reader.address(), Ok(address));
        assert_eq!(reader.option_address(), Ok(None));
        assert_eq!(reader.option_bytes(), Ok(Some(Vec::new())));
        assert!(reader.is_empty());
        for cut in 0..bytes.len() {
            let mut reader = Reader::new(&bytes[..cut]);
            let all = (|| -> DecodeResult<()> {
                reader.u8()?;
                reader.bool()?;
                reader.u32()?;
                reader.i32()?;
                reader.u64()?;
                reader.u128()?;
                reader.bytes()?;
                reader.address()?;
                reader.option_address()?;
                reader.option_bytes()?;
                Ok(())
            })();
            assert!(all.is_err(), "cut at {cut}");
        }
        assert!(Reader::new(&[2]).bool().is_err());
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0xff]).bytes().is_err());
        assert!(Reader::new(&[5, 0, 0, 0, 1, 2]).count(1).is_err());
    }
}
