//! The certificate table that comes with an SEV-SNP report from the host (GHCB specification,
//! extended guest request; configfs-tsm's `auxblob`).

use super::SnpError;

/// The certificate table an SNP guest can get with its report (configfs-tsm's `auxblob`;
/// the GHCB specification's extended guest request): entries of a 16-byte GUID, a 4-byte
/// offset and a 4-byte length (little-endian, offsets from the table's start), ended by an
/// all-zero entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateTable {
    /// The VCEK (DER), when present.
    pub vcek: Option<Vec<u8>>,
    /// The ASK (DER), when present.
    pub ask: Option<Vec<u8>>,
    /// The ARK (DER), when present.
    pub ark: Option<Vec<u8>>,
}

/// The table's GUIDs, in the order written in text (AMD's and the kernel's names).
const GUID_VCEK: &str = "63da758d-e664-4564-adc5-f4b93be8accd";
const GUID_ASK: &str = "4ab7b379-bbac-4fe4-a02f-05aef327c782";
const GUID_ARK: &str = "c0b406a4-a803-4952-9743-3fb6014cd0ae";

/// A GUID's 16 bytes in both layouts found in the wild: as written in text (RFC 4122 order),
/// and with the first three groups little-endian (EFI/Windows order).
fn guid_layouts(text: &str) -> [[u8; 16]; 2] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let mut plain = [0u8; 16];
    // The constants above are 32 hex digits; decoding them cannot fail.
    hex::decode_to_slice(&hex, &mut plain).expect("GUID constants are valid hex");
    let mut mixed = plain;
    mixed[0..4].reverse();
    mixed[4..6].reverse();
    mixed[6..8].reverse();
    [plain, mixed]
}

impl CertificateTable {
    /// Parses a table; unknown GUIDs are skipped, a certificate outside the blob is refused.
    /// An empty blob is an empty table. Never panics.
    pub fn parse(blob: &[u8]) -> Result<CertificateTable, SnpError> {
        let malformed =
            |what: String| SnpError::EvidenceMalformed(format!("certificate table: {what}"));
        let mut table = CertificateTable::default();
        let [vcek, ask, ark] = [GUID_VCEK, GUID_ASK, GUID_ARK].map(guid_layouts);
        if blob.is_empty() {
            return Ok(table);
        }
        let mut offset = 0usize;
        loop {
            let entry = blob
                .get(offset..offset + 24)
                .ok_or_else(|| malformed("no terminating entry".into()))?;
            if entry.iter().all(|&b| b == 0) {
                return Ok(table);
            }
            let mut guid = [0u8; 16];
            guid.copy_from_slice(&entry[..16]);
            let word = |at: usize| {
                let mut w = [0u8; 4];
                w.copy_from_slice(&entry[at..at + 4]);
                u32::from_le_bytes(w) as usize
            };
            let (start, len) = (word(16), word(20));
            let data = start
                .checked_add(len)
                .and_then(|end| blob.get(start..end))
                .ok_or_else(|| malformed(format!("entry at {offset} points outside the table")))?;
            if vcek.contains(&guid) {
                table.vcek = Some(data.to_vec());
            } else if ask.contains(&guid) {
                table.ask = Some(data.to_vec());
            } else if ark.contains(&guid) {
                table.ark = Some(data.to_vec());
            }
            offset += 24;
        }
    }

    /// Writes a table (tests, and a host-side tool): entries, terminator, then the data.
    pub fn encode(&self) -> Vec<u8> {
        let present: Vec<(&str, &Vec<u8>)> = [
            (GUID_VCEK, &self.vcek),
            (GUID_ASK, &self.ask),
            (GUID_ARK, &self.ark),
        ]
        .into_iter()
        .filter_map(|(guid, data)| data.as_ref().map(|d| (guid, d)))
        .collect();
        let mut header = Vec::new();
        let mut data_area = Vec::new();
        let data_start = (present.len() + 1) * 24;
        for (guid, data) in present {
            header.extend_from_slice(&guid_layouts(guid)[0]);
            header.extend_from_slice(&((data_start + data_area.len()) as u32).to_le_bytes());
            header.extend_from_slice(&(data.len() as u32).to_le_bytes());
            data_area.extend_from_slice(data);
        }
        header.extend_from_slice(&[0u8; 24]);
        header.extend_from_slice(&data_area);
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_tables_are_read_in_both_guid_layouts() {
        let table = CertificateTable {
            vcek: Some(vec![1, 2, 3]),
            ask: None,
            ark: Some(vec![9; 40]),
        };
        let blob = table.encode();
        assert_eq!(CertificateTable::parse(&blob).unwrap(), table);
        // The same table with the GUID in the EFI layout.
        let mut mixed = blob.clone();
        mixed[..16].copy_from_slice(&guid_layouts(GUID_VCEK)[1]);
        assert_eq!(CertificateTable::parse(&mixed).unwrap(), table);
        assert_eq!(
            CertificateTable::parse(&[]).unwrap(),
            CertificateTable::default()
        );
        // An entry pointing past the end, and a table without a terminator.
        let mut outside = blob.clone();
        outside[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(CertificateTable::parse(&outside).is_err());
        assert!(CertificateTable::parse(&blob[..30]).is_err());
    }
}
