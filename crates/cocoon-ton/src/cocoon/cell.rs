//! Bounded readers and writers for the field types of facts §0: unsigned integers, `addr_std`,
//! minimal coins, 256-bit values, refs and `Maybe ^Cell`. Every read checks what is left before
//! it touches the parser, so no input can make it panic.

use tonlib_core::cell::{ArcCell, Cell, CellBuilder, CellParser};
use tonlib_core::{TonAddress, TonHash};

use super::{CodecError, Hash256};
use crate::Coins;

/// Reads one cell field by field.
pub(crate) struct Reader<'a> {
    parser: CellParser<'a>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(cell: &'a Cell) -> Reader<'a> {
        Reader {
            parser: cell.parser(),
        }
    }

    pub(crate) fn remaining_bits(&mut self) -> usize {
        self.parser.remaining_bits()
    }

    pub(crate) fn remaining_refs(&self) -> usize {
        self.parser.remaining_refs()
    }

    fn need(&mut self, bits: usize, field: &'static str) -> Result<(), CodecError> {
        if self.parser.remaining_bits() < bits {
            return Err(CodecError::Truncated { field });
        }
        Ok(())
    }

    pub(crate) fn bit(&mut self, field: &'static str) -> Result<bool, CodecError> {
        self.need(1, field)?;
        Ok(self.parser.load_bit()?)
    }

    /// An unsigned integer of `bits` ≤ 64 bits.
    pub(crate) fn uint(&mut self, bits: usize, field: &'static str) -> Result<u64, CodecError> {
        debug_assert!(bits <= 64);
        self.need(bits, field)?;
        Ok(self.parser.load_u64(bits)?)
    }

    pub(crate) fn u8(&mut self, bits: usize, field: &'static str) -> Result<u8, CodecError> {
        debug_assert!(bits <= 8);
        Ok(self.uint(bits, field)? as u8)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, CodecError> {
        Ok(self.uint(32, field)? as u32)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, CodecError> {
        self.uint(64, field)
    }

    pub(crate) fn bytes<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], CodecError> {
        self.need(N * 8, field)?;
        let mut out = [0; N];
        self.parser.load_slice(&mut out)?;
        Ok(out)
    }

    pub(crate) fn hash(&mut self, field: &'static str) -> Result<Hash256, CodecError> {
        self.bytes::<32>(field)
    }

    /// `VarUInteger 16`: a 4-bit byte count, then that many big-endian bytes, minimal.
    pub(crate) fn coins(&mut self, field: &'static str) -> Result<Coins, CodecError> {
        let len = self.u8(4, field)? as usize;
        self.need(len * 8, field)?;
        let mut value: u128 = 0;
        for i in 0..len {
            let byte = self.parser.load_u8(8)?;
            if i == 0 && byte == 0 {
                return Err(CodecError::NonMinimalCoins { field });
            }
            value = (value << 8) | u128::from(byte);
        }
        Ok(Coins(value))
    }

    /// `addr_std$10 anycast:0 workchain_id:int8 address:bits256` (facts §0).
    pub(crate) fn address(&mut self, field: &'static str) -> Result<TonAddress, CodecError> {
        let tag = self.u8(2, field)?;
        if tag != 0b10 {
            return Err(CodecError::UnsupportedAddress { field, tag });
        }
        if self.bit(field)? {
            return Err(CodecError::AnycastAddress { field });
        }
        let workchain = self.u8(8, field)? as i8;
        let hash = self.hash(field)?;
        Ok(TonAddress::new(i32::from(workchain), TonHash::from(hash)))
    }

    pub(crate) fn reference(&mut self, field: &'static str) -> Result<ArcCell, CodecError> {
        if self.parser.remaining_refs() == 0 {
            return Err(CodecError::MissingReference { field });
        }
        Ok(self.parser.next_reference()?)
    }

    /// `Maybe ^Cell`: one bit, then a ref if it is 1.
    pub(crate) fn maybe_ref(&mut self, field: &'static str) -> Result<Option<ArcCell>, CodecError> {
        if self.bit(field)? {
            Ok(Some(self.reference(field)?))
        } else {
            Ok(None)
        }
    }

    /// Fails unless every bit and ref of the cell has been read.
    pub(crate) fn finish(mut self, layout: &'static str) -> Result<(), CodecError> {
        let bits = self.parser.remaining_bits();
        let refs = self.parser.remaining_refs();
        if bits != 0 || refs != 0 {
            return Err(CodecError::TrailingData { layout, bits, refs });
        }
        Ok(())
    }
}

/// Builds one cell field by field.
pub(crate) struct Writer {
    builder: CellBuilder,
}

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer {
            builder: CellBuilder::new(),
        }
    }

    pub(crate) fn bit(&mut self, value: bool) -> Result<&mut Writer, CodecError> {
        self.builder.store_bit(value)?;
        Ok(self)
    }

    /// `value` in `bits` ≤ 64 bits; a value that does not fit is a builder error.
    pub(crate) fn uint(&mut self, bits: usize, value: u64) -> Result<&mut Writer, CodecError> {
        if bits < 64 && value >> bits != 0 {
            return Err(CodecError::Cell(format!(
                "{value} does not fit {bits} bits"
            )));
        }
        if bits > 0 {
            self.builder.store_u64(bits, value)?;
        }
        Ok(self)
    }

    pub(crate) fn u32(&mut self, value: u32) -> Result<&mut Writer, CodecError> {
        self.uint(32, u64::from(value))
    }

    pub(crate) fn u64(&mut self, value: u64) -> Result<&mut Writer, CodecError> {
        self.uint(64, value)
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) -> Result<&mut Writer, CodecError> {
        self.builder.store_slice(value)?;
        Ok(self)
    }

    pub(crate) fn coins(
        &mut self,
        value: Coins,
        field: &'static str,
    ) -> Result<&mut Writer, CodecError> {
        if !value.fits_in_cell() {
            return Err(CodecError::CoinsTooLarge { field });
        }
        let be = value.0.to_be_bytes();
        let len = 16 - (value.0.leading_zeros() as usize) / 8;
        self.uint(4, len as u64)?;
        self.bytes(&be[16 - len..])
    }

    pub(crate) fn address(
        &mut self,
        value: &TonAddress,
        field: &'static str,
    ) -> Result<&mut Writer, CodecError> {
        let workchain =
            i8::try_from(value.workchain).map_err(|_| CodecError::WorkchainOutOfRange {
                field,
                workchain: value.workchain,
            })?;
        self.uint(3, 0b100)?;
        self.uint(8, u64::from(workchain as u8))?;
        self.bytes(value.hash_part.as_slice())
    }

    pub(crate) fn reference(&mut self, cell: &ArcCell) -> Result<&mut Writer, CodecError> {
        self.builder.store_reference(cell)?;
        Ok(self)
    }

    pub(crate) fn child(&mut self, cell: Cell) -> Result<&mut Writer, CodecError> {
        self.builder.store_child(cell)?;
        Ok(self)
    }

    pub(crate) fn maybe_ref(&mut self, cell: Option<&ArcCell>) -> Result<&mut Writer, CodecError> {
        match cell {
            Some(c) => self.bit(true)?.reference(c),
            None => self.bit(false),
        }
    }

    /// Appends the bits and refs of `cell` (a value stored inline, e.g. a dictionary leaf).
    pub(crate) fn append(&mut self, cell: &Cell) -> Result<&mut Writer, CodecError> {
        self.builder.store_cell(cell)?;
        Ok(self)
    }

    pub(crate) fn build(&mut self) -> Result<Cell, CodecError> {
        Ok(self.builder.build()?)
    }
}

/// Reads the op of a body: [`CodecError::EmptyBody`] for an empty one (a plain top-up).
pub(crate) fn read_op(r: &mut Reader<'_>) -> Result<u32, CodecError> {
    if r.remaining_bits() == 0 && r.remaining_refs() == 0 {
        return Err(CodecError::EmptyBody);
    }
    r.u32("op")
}

impl Reader<'_> {
    /// The bits and refs not read yet, as a cell of their own (a value stored inline).
    pub(crate) fn rest(&mut self) -> Result<Cell, CodecError> {
        Ok(self.parser.load_remaining()?)
    }
}
