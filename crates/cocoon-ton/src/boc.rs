//! Reading bags of cells from untrusted bytes. `tonlib_core`'s parser trusts the counts and
//! indices in a BOC's header: a cell count of 2³² reserves memory for that many cells before
//! reading any (the process aborts), and a root or reference index past the last cell indexes
//! out of bounds (a panic). Every BOC from a peer or the chain is checked here first, in one
//! pass over the bytes without allocating, so the parser only ever sees bounded, consistent
//! input.

use tonlib_core::cell::BagOfCells;

/// `serialized_boc#b5ee9c72`, the only form `tonlib_core` reads.
const MAGIC: u32 = 0xb5ee_9c72;

/// Big-endian reads that fail instead of running past the end.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.0.len() {
            return Err("bag of cells cut off".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// An unsigned number of `n` ≤ 8 bytes.
    fn number(&mut self, n: u8) -> Result<u64, String> {
        Ok(self
            .take(usize::from(n))?
            .iter()
            .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte)))
    }
}

/// Checks the shape of a serialized bag of cells: sizes in range, a cell count the bytes can
/// hold, every root and reference naming an existing later cell. Says nothing of the cells'
/// contents (the parser checks those).
pub(crate) fn check_shape(bytes: &[u8]) -> Result<(), String> {
    let mut r = Bytes(bytes);
    let magic = r.number(4)?;
    if magic != u64::from(MAGIC) {
        return Err(format!("not a bag of cells (magic {magic:#010x})"));
    }
    let flags = r.take(1)?[0];
    let has_index = flags & 0x80 != 0;
    let size = flags & 0x07;
    if !(1..=4).contains(&size) {
        return Err(format!("reference size {size} (1 to 4)"));
    }
    let offset_size = r.take(1)?[0];
    if !(1..=8).contains(&offset_size) {
        return Err(format!("offset size {offset_size} (1 to 8)"));
    }
    let cells = r.number(size)?;
    let roots = r.number(size)?;
    let _absent = r.number(size)?;
    let _total_size = r.number(offset_size)?;
    // A cell takes at least its two descriptor bytes.
    if cells > (r.0.len() / 2) as u64 {
        return Err(format!("{cells} cells in {} bytes", bytes.len()));
    }
    if roots == 0 || roots > cells {
        return Err(format!("{roots} roots of {cells} cells"));
    }
    for _ in 0..roots {
        let root = r.number(size)?;
        if root >= cells {
            return Err(format!("root {root} of {cells} cells"));
        }
    }
    if has_index {
        // cells ≤ len/2 and offset_size ≤ 8, so this cannot overflow.
        r.take(cells as usize * usize::from(offset_size))?;
    }
    for index in 0..cells {
        let descriptor = r.take(2)?;
        let (d1, d2) = (descriptor[0], descriptor[1]);
        let references = d1 & 0x07;
        if references > 4 {
            return Err(format!("cell {index} has {references} references"));
        }
        if d1 & 0x10 != 0 {
            // Stored hashes and depths: one per level present, plus the cell's own.
            let hashes = (d1 >> 5).count_ones() as usize + 1;
            r.take(hashes * (32 + 2))?;
        }
        r.take(usize::from((d2 >> 1) + (d2 & 1)))?;
        for _ in 0..references {
            let target = r.number(size)?;
            if target <= index || target >= cells {
                return Err(format!("cell {index} refers to cell {target} of {cells}"));
            }
        }
    }
    Ok(())
}

/// [`BagOfCells::parse`] after [`check_shape`].
pub(crate) fn parse(bytes: &[u8]) -> Result<BagOfCells, String> {
    check_shape(bytes)?;
    BagOfCells::parse(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-cell BOC with the given header fields.
    fn boc(cells: u8, roots: u8, root: u8, cell: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_be_bytes().to_vec();
        out.extend_from_slice(&[0x01, 0x01, cells, roots, 0, cell.len() as u8, root]);
        out.extend_from_slice(cell);
        out
    }

    #[test]
    fn a_valid_bag_passes_and_parses() {
        let bytes = boc(1, 1, 0, &[0x00, 0x02, 0xab]);
        check_shape(&bytes).unwrap();
        parse(&bytes).unwrap();
    }

    #[test]
    fn a_root_past_the_last_cell_is_refused_not_a_panic() {
        let bytes = boc(1, 1, 5, &[0x00, 0x02, 0xab]);
        assert!(check_shape(&bytes).unwrap_err().contains("root 5"));
    }

    #[test]
    fn a_reference_past_the_last_cell_is_refused() {
        let bytes = boc(1, 1, 0, &[0x01, 0x00, 0x07]);
        assert!(check_shape(&bytes)
            .unwrap_err()
            .contains("refers to cell 7"));
    }

    #[test]
    fn a_huge_cell_count_is_refused_before_anything_is_reserved() {
        let mut bytes = MAGIC.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x04, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        assert!(check_shape(&bytes).unwrap_err().contains("cells in"));
    }
}
