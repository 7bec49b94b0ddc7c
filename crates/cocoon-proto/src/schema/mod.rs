//! COCOON v2 messages: one Rust type per TL constructor, with enums for polymorphic types and
//! for dispatching what may arrive on each hop.
//!
//! Every type carries its normalised TL declaration in `SCHEMA`; its constructor id is the CRC32
//! of that text, computed at compile time (a few ids are pinned by the schema instead).

/// Declares a struct for a TL constructor without conditional fields, encoding each field with
/// its [`crate::tl::TlField`] implementation in declaration order.
macro_rules! tl_struct {
    (
        $(#[$meta:meta])*
        $name:ident = $schema:literal {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl $crate::tl::TlObject for $name {
            const CONSTRUCTOR: u32 = $crate::tl::crc32($schema.as_bytes());
            const SCHEMA: &'static str = $schema;

            fn write_bare(&self, out: &mut Vec<u8>) {
                let _ = &out;
                $( $crate::tl::TlField::write_field(&self.$field, out); )*
            }

            fn read_bare(
                r: &mut $crate::tl::TlReader<'_>,
            ) -> Result<Self, $crate::tl::TlError> {
                let _ = &r;
                // Struct expressions evaluate their fields in the order written, which is the
                // wire order.
                Ok(Self { $( $field: $crate::tl::TlField::read_field(r)?, )* })
            }
        }
    };
}

/// Declares a struct for a TL constructor whose declaration ends in
/// `flags:# last:flags.0?T`: plain fields, then a flags word with bit 0 set iff the last
/// (optional) field is present. Unknown flag bits are ignored when reading.
macro_rules! tl_struct_flag0 {
    (
        $(#[$meta:meta])*
        $name:ident = $schema:literal {
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty, )*
            ;
            $(#[$last_meta:meta])* $last:ident : Option<$last_ty:ty> $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
            $(#[$last_meta])* pub $last: Option<$last_ty>,
        }

        impl $crate::tl::TlObject for $name {
            const CONSTRUCTOR: u32 = $crate::tl::crc32($schema.as_bytes());
            const SCHEMA: &'static str = $schema;

            fn write_bare(&self, out: &mut Vec<u8>) {
                $( $crate::tl::TlField::write_field(&self.$field, out); )*
                $crate::tl::write_u32(out, u32::from(self.$last.is_some()));
                if let Some(value) = &self.$last {
                    $crate::tl::TlField::write_field(value, out);
                }
            }

            fn read_bare(
                r: &mut $crate::tl::TlReader<'_>,
            ) -> Result<Self, $crate::tl::TlError> {
                $( let $field = $crate::tl::TlField::read_field(r)?; )*
                let flags = r.read_u32()?;
                let $last = if $crate::schema::flag(flags, 0) {
                    Some($crate::tl::TlField::read_field(r)?)
                } else {
                    None
                };
                Ok(Self { $( $field, )* $last })
            }
        }
    };
}

/// Declares an enum whose variants each wrap one [`crate::tl::TlObject`], decoded by
/// constructor id.
macro_rules! tl_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident($ty:ty) ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$variant_meta])* $variant($ty), )*
        }

        impl $crate::tl::TlBoxed for $name {
            fn write_boxed(&self, out: &mut Vec<u8>) {
                match self {
                    $( Self::$variant(value) => $crate::tl::TlBoxed::write_boxed(value, out), )*
                }
            }

            fn read_boxed(
                r: &mut $crate::tl::TlReader<'_>,
            ) -> Result<Self, $crate::tl::TlError> {
                let found = r.read_u32()?;
                $(
                    if found == <$ty as $crate::tl::TlObject>::CONSTRUCTOR {
                        return Ok(Self::$variant(
                            <$ty as $crate::tl::TlObject>::read_bare(r)?,
                        ));
                    }
                )*
                Err($crate::tl::TlError::UnknownConstructor {
                    type_name: stringify!($name),
                    found,
                })
            }
        }

        impl $name {
            /// Constructor ids this enum decodes.
            pub const CONSTRUCTORS: &'static [u32] =
                &[ $( <$ty as $crate::tl::TlObject>::CONSTRUCTOR, )* ];
        }

        $(
            impl From<$ty> for $name {
                fn from(value: $ty) -> Self {
                    Self::$variant(value)
                }
            }
        )*
    };
}

/// Makes a polymorphic (boxed) type usable as a field of other messages.
macro_rules! boxed_field {
    ($name:ty) => {
        impl $crate::tl::TlField for $name {
            fn write_field(&self, out: &mut Vec<u8>) {
                $crate::tl::TlBoxed::write_boxed(self, out);
            }

            fn read_field(r: &mut $crate::tl::TlReader<'_>) -> Result<Self, $crate::tl::TlError> {
                $crate::tl::TlBoxed::read_boxed(r)
            }
        }
    };
}

/// Whether bit `bit` of a `flags:#` word is set.
pub(crate) fn flag(flags: u32, bit: u32) -> bool {
    flags & (1 << bit) != 0
}

mod client;
mod common;
mod proxy;
mod sealed;
mod tcp;
mod worker;

pub use client::*;
pub use common::*;
pub use proxy::*;
pub use sealed::*;
pub use tcp::*;
pub use worker::*;
