//! `HashmapE n X` with byte-aligned keys, read and written in the canonical form TVM produces:
//! each edge label takes the shortest of `hml_short`, `hml_long` and `hml_same`, and the short
//! form wins ties. The root's hash lists and proxy registry are such dictionaries (facts §4).
//!
//! Reading is bounded: a bag of cells may share one subtree under many forks, which would unfold
//! into an enormous tree, so at most [`MAX_DICT_ENTRIES`] leaves are read.

use tonlib_core::cell::{ArcCell, Cell};

use super::cell::{Reader, Writer};
use super::CodecError;

/// The most entries a dictionary may have before we refuse it.
pub const MAX_DICT_ENTRIES: usize = 1 << 16;

/// Bits needed to write a number up to `n` (`#<= n`).
fn length_bits(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()) as usize
}

fn bits_to_bytes(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|c| c.iter().fold(0u8, |acc, &b| (acc << 1) | u8::from(b)))
        .collect()
}

fn bytes_to_bits(bytes: &[u8]) -> Vec<bool> {
    bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1 == 1))
        .collect()
}

/// A dictionary entry: the key as big-endian bytes, the value as the cell of its inline bits.
pub(crate) type Entry = (Vec<u8>, Cell);

/// Reads a `HashmapE` (one bit, then the root in a ref) with `key_bits` (a multiple of 8) keys.
pub(crate) fn read(
    r: &mut Reader<'_>,
    key_bits: usize,
    field: &'static str,
) -> Result<Vec<Entry>, CodecError> {
    let Some(root) = r.maybe_ref(field)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut prefix = Vec::with_capacity(key_bits);
    let mut nodes = 0usize;
    read_node(&root, key_bits, &mut prefix, &mut out, &mut nodes, field)?;
    Ok(out)
}

fn read_label(r: &mut Reader<'_>, n: usize, field: &'static str) -> Result<Vec<bool>, CodecError> {
    let too_long = CodecError::Dictionary {
        field,
        reason: "edge label longer than the key",
    };
    if !r.bit(field)? {
        // hml_short: unary length, then the bits.
        let mut len = 0;
        while r.bit(field)? {
            len += 1;
            if len > n {
                return Err(too_long);
            }
        }
        (0..len).map(|_| r.bit(field)).collect()
    } else if !r.bit(field)? {
        // hml_long: the length in #<= n bits, then the bits.
        let len = r.uint(length_bits(n), field)? as usize;
        if len > n {
            return Err(too_long);
        }
        (0..len).map(|_| r.bit(field)).collect()
    } else {
        // hml_same: one bit repeated.
        let value = r.bit(field)?;
        let len = r.uint(length_bits(n), field)? as usize;
        if len > n {
            return Err(too_long);
        }
        Ok(vec![value; len])
    }
}

fn read_node(
    cell: &ArcCell,
    n: usize,
    prefix: &mut Vec<bool>,
    out: &mut Vec<Entry>,
    nodes: &mut usize,
    field: &'static str,
) -> Result<(), CodecError> {
    *nodes += 1;
    if *nodes > 2 * MAX_DICT_ENTRIES {
        return Err(CodecError::Dictionary {
            field,
            reason: "too many entries",
        });
    }
    let mut r = Reader::new(cell);
    let label = read_label(&mut r, n, field)?;
    let start = prefix.len();
    let rest = n - label.len();
    prefix.extend_from_slice(&label);
    if rest == 0 {
        out.push((bits_to_bytes(prefix), r.rest()?));
    } else {
        if r.remaining_bits() != 0 || r.remaining_refs() != 2 {
            return Err(CodecError::Dictionary {
                field,
                reason: "a fork must hold its label and two refs only",
            });
        }
        let left = r.reference(field)?;
        let right = r.reference(field)?;
        for (bit, child) in [(false, left), (true, right)] {
            prefix.push(bit);
            read_node(&child, rest - 1, prefix, out, nodes, field)?;
            prefix.pop();
        }
    }
    prefix.truncate(start);
    Ok(())
}

/// Writes a `HashmapE` of `entries` (keys of `key_bits` bits, sorted and distinct).
pub(crate) fn write(w: &mut Writer, key_bits: usize, entries: &[Entry]) -> Result<(), CodecError> {
    if entries.is_empty() {
        w.bit(false)?;
        return Ok(());
    }
    let keyed: Vec<(Vec<bool>, &Cell)> =
        entries.iter().map(|(k, v)| (bytes_to_bits(k), v)).collect();
    if keyed.iter().any(|(k, _)| k.len() != key_bits) || keyed.windows(2).any(|p| p[0].0 >= p[1].0)
    {
        return Err(CodecError::Dictionary {
            field: "dictionary",
            reason: "keys must have the key length and be sorted and distinct",
        });
    }
    let root = write_node(&keyed, 0, key_bits)?;
    w.bit(true)?.child(root)?;
    Ok(())
}

fn write_label(w: &mut Writer, label: &[bool], n: usize) -> Result<(), CodecError> {
    let k = length_bits(n);
    let len = label.len();
    let short = 2 * len + 2;
    let long = 2 + k + len;
    let same = 3 + k;
    let all_same = len > 0 && label.iter().all(|&b| b == label[0]);
    if all_same && same < short.min(long) {
        w.bit(true)?.bit(true)?.bit(label[0])?.uint(k, len as u64)?;
    } else if long < short {
        w.bit(true)?.bit(false)?.uint(k, len as u64)?;
        for &b in label {
            w.bit(b)?;
        }
    } else {
        w.bit(false)?;
        for _ in 0..len {
            w.bit(true)?;
        }
        w.bit(false)?;
        for &b in label {
            w.bit(b)?;
        }
    }
    Ok(())
}

fn write_node(entries: &[(Vec<bool>, &Cell)], pos: usize, n: usize) -> Result<Cell, CodecError> {
    let first = &entries[0].0;
    let last = &entries[entries.len() - 1].0;
    // Sorted keys: the common prefix of the first and last is that of all.
    let common = (pos..pos + n).take_while(|&i| first[i] == last[i]).count();
    let mut w = Writer::new();
    write_label(&mut w, &first[pos..pos + common], n)?;
    if common == n {
        w.append(entries[0].1)?;
    } else {
        let split = pos + common;
        let at = entries.partition_point(|(k, _)| !k[split]);
        let rest = n - common - 1;
        w.child(write_node(&entries[..at], split + 1, rest)?)?;
        w.child(write_node(&entries[at..], split + 1, rest)?)?;
    }
    w.build()
}
