//! Get-method stack values as plain, `Send` data: integers as `BigInt`, cells, slices and
//! builders as BOCs. The VM's own stack (`Rc`-based) never leaves this crate.

use num_bigint::BigInt;
use tycho_types::boc::Boc;
use tycho_types::cell::{Cell, CellBuilder, CellFamily, HashBytes, Load, Store};
use tycho_types::models::IntAddr;
use tycho_vm::{OwnedCellSlice, RcStackValue, SafeRc, Stack, StackValueType};

use crate::error::{Error, Result};
use crate::Address;

/// Tuples nested deeper than this are refused on the way out (a contract cannot make us recurse
/// without bound).
const MAX_TUPLE_DEPTH: usize = 16;

/// One value of a TVM stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackValue {
    Null,
    Int(BigInt),
    /// The integer "not a number" a quiet arithmetic op can produce.
    NaN,
    /// A cell, as a BOC.
    Cell(Vec<u8>),
    /// A slice, as the BOC of a cell holding exactly the slice's remaining bits and references.
    Slice(Vec<u8>),
    /// A builder, as the BOC of the cell it would build.
    Builder(Vec<u8>),
    Tuple(Vec<StackValue>),
}

impl StackValue {
    /// An integer argument.
    pub fn int(value: impl Into<BigInt>) -> Self {
        Self::Int(value.into())
    }

    /// An address as get-methods take and return it: a slice holding an `addr_std`.
    pub fn address(address: &Address) -> Result<Self> {
        let mut builder = CellBuilder::new();
        address
            .to_std()
            .store_into(&mut builder, Cell::empty_context())?;
        Ok(Self::Slice(Boc::encode(builder.build()?)))
    }

    /// The address a slice holds (`addr_std` only; `None` for anything else, `addr_none`
    /// included).
    pub fn as_address(&self) -> Option<Address> {
        let Self::Slice(boc) = self else { return None };
        let cell = Boc::decode(boc).ok()?;
        let mut slice = cell.as_slice().ok()?;
        match IntAddr::load_from(&mut slice).ok()? {
            IntAddr::Std(std) => Some(Address::from_std(&std)),
            IntAddr::Var(_) => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<&BigInt> {
        match self {
            Self::Int(value) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn to_vm(&self) -> Result<RcStackValue> {
        Ok(match self {
            Self::Null => Stack::make_null(),
            Self::NaN => Stack::make_nan(),
            Self::Int(value) => {
                // TVM integers are 257-bit signed: [-2^256, 2^256).
                let fits = value.bits() <= 256 || *value == -(BigInt::from(1u8) << 256u32);
                if !fits {
                    return Err(Error::UnsupportedStackValue("integer outside 257 bits"));
                }
                SafeRc::new_dyn_value(value.clone())
            }
            Self::Cell(boc) => SafeRc::new_dyn_value(decode("stack cell", boc)?),
            Self::Slice(boc) => SafeRc::new_dyn_value(OwnedCellSlice::new_allow_exotic(decode(
                "stack slice",
                boc,
            )?)),
            Self::Builder(boc) => {
                let cell = decode("stack builder", boc)?;
                let mut builder = CellBuilder::new();
                builder.store_slice(cell.as_slice_allow_exotic())?;
                SafeRc::new_dyn_value(builder)
            }
            Self::Tuple(items) => {
                let items = items.iter().map(Self::to_vm).collect::<Result<Vec<_>>>()?;
                SafeRc::new_dyn_value(items)
            }
        })
    }

    pub(crate) fn from_vm(value: &RcStackValue) -> Result<Self> {
        Self::from_vm_at(value, 0)
    }

    fn from_vm_at(value: &RcStackValue, depth: usize) -> Result<Self> {
        let ty = value.raw_ty();
        Ok(if ty == StackValueType::Null as u8 {
            Self::Null
        } else if ty == StackValueType::Int as u8 {
            match value.as_int() {
                Some(int) => Self::Int(int.clone()),
                None => Self::NaN,
            }
        } else if let Some(cell) = value.as_cell() {
            Self::Cell(Boc::encode(cell))
        } else if let Some(slice) = value.as_cell_slice() {
            Self::Slice(Boc::encode(CellBuilder::build_from(slice.apply())?))
        } else if let Some(builder) = value.as_cell_builder() {
            Self::Builder(Boc::encode(builder.clone().build()?))
        } else if let Some(items) = value.as_tuple() {
            if depth >= MAX_TUPLE_DEPTH {
                return Err(Error::UnsupportedStackValue("tuple nested too deep"));
            }
            Self::Tuple(
                items
                    .iter()
                    .map(|item| Self::from_vm_at(item, depth + 1))
                    .collect::<Result<_>>()?,
            )
        } else {
            return Err(Error::UnsupportedStackValue("continuation"));
        })
    }
}

/// Decodes a one-root BOC, naming the input in the error.
pub(crate) fn decode(what: &'static str, boc: &[u8]) -> Result<Cell> {
    Boc::decode(boc).map_err(|source| Error::BadBoc { what, source })
}

/// The method id TON derives from a get-method's name: CRC-16/XMODEM of the name, with bit 16
/// set (`seqno` → 85143).
pub fn method_id(name: &str) -> u32 {
    use tycho_vm::VmGetterMethodId;
    name.as_getter_method_id()
}

/// The hash of a cell given as a BOC, for comparing cells without caring how a BOC was written.
pub fn cell_hash(boc: &[u8]) -> Result<[u8; 32]> {
    let cell = decode("cell", boc)?;
    let HashBytes(hash) = *cell.repr_hash();
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_ids_are_the_ones_ton_uses() {
        assert_eq!(method_id("seqno"), 85143);
        assert_eq!(method_id("get_public_key"), 78748);
        assert_eq!(method_id("get_wallet_address"), 103289);
    }

    #[test]
    fn values_cross_the_vm_boundary_unchanged() {
        let address = Address::basechain([7; 32]);
        let values = vec![
            StackValue::Null,
            StackValue::NaN,
            StackValue::int(-5),
            StackValue::int(BigInt::from(1u8) << 255),
            StackValue::address(&address).unwrap(),
            StackValue::Cell(Boc::encode(Cell::empty_cell())),
            StackValue::Builder(Boc::encode(Cell::empty_cell())),
            StackValue::Tuple(vec![StackValue::int(1), StackValue::Tuple(vec![])]),
        ];
        for value in values {
            let back = StackValue::from_vm(&value.to_vm().unwrap()).unwrap();
            assert_eq!(back, value);
        }
        assert_eq!(
            StackValue::address(&address).unwrap().as_address(),
            Some(address)
        );
        assert_eq!(StackValue::int(3).as_address(), None);
    }

    #[test]
    fn integers_must_fit_257_bits() {
        let limit = BigInt::from(1u8) << 256u32;
        assert!(StackValue::Int(-limit.clone()).to_vm().is_ok());
        assert!(StackValue::Int(limit.clone() - 1u8).to_vm().is_ok());
        for value in [limit.clone(), -limit - 1u8] {
            assert!(matches!(
                StackValue::Int(value).to_vm(),
                Err(Error::UnsupportedStackValue(_))
            ));
        }
    }

    #[test]
    fn bad_bocs_in_arguments_are_errors() {
        for value in [
            StackValue::Cell(vec![]),
            StackValue::Slice(vec![0xb5, 0xee, 0x9c, 0x72, 1, 2, 3]),
            StackValue::Tuple(vec![StackValue::Builder(b"not a boc".to_vec())]),
        ] {
            assert!(
                matches!(value.to_vm(), Err(Error::BadBoc { .. })),
                "{value:?}"
            );
        }
    }
}
