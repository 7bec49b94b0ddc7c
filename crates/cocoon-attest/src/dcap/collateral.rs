//! Collateral for the DCAP verifier: the fixed bundle or a directory of bundles picked by
//! FMSPC and date, the typed check of every piece's validity dates, and the UTC time
//! arithmetic both need (Intel dates are RFC 3339 strings, X.509 dates are ASN.1 times).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dcap_qvl::QuoteCollateralV3;

use super::{load_collateral_json, lock, DcapError};

pub(super) enum CollateralStore {
    Fixed(Arc<CollateralFile>),
    Directory(DirectoryStore),
}

/// A collateral bundle with the facts used to choose it.
pub(super) struct CollateralFile {
    pub(super) collateral: QuoteCollateralV3,
    /// FMSPC of its TCB info, upper-case hex; `None` if the TCB info does not parse (then
    /// dcap-qvl will say why).
    pub(super) fmspc: Option<String>,
    /// TCB info issueDate and nextUpdate, Unix seconds.
    tcb_window: Option<(u64, u64)>,
}

impl CollateralFile {
    pub(super) fn new(collateral: QuoteCollateralV3) -> Self {
        let tcb_info: Option<dcap_qvl::TcbInfo> = serde_json::from_str(&collateral.tcb_info).ok();
        let fmspc = tcb_info.as_ref().map(|t| t.fmspc.to_ascii_uppercase());
        let tcb_window = tcb_info.and_then(|t| {
            Some((
                parse_rfc3339(&t.issue_date)?,
                parse_rfc3339(&t.next_update)?,
            ))
        });
        CollateralFile {
            collateral,
            fmspc,
            tcb_window,
        }
    }
}

pub(super) struct DirectoryStore {
    pub(super) dir: PathBuf,
    files: Mutex<HashMap<PathBuf, LoadedFile>>,
}

struct LoadedFile {
    /// Modification time and length when read; a change of either triggers a re-read.
    modified: Option<SystemTime>,
    len: u64,
    /// The parsed bundle, or why the file is unusable (kept so a bad file is not re-parsed
    /// and re-logged on every quote).
    parsed: Result<Arc<CollateralFile>, String>,
}

impl DirectoryStore {
    /// A store over `dir`; nothing is read until the first quote needs collateral.
    pub(super) fn new(dir: PathBuf) -> Self {
        DirectoryStore {
            dir,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// Rescans the directory (one `stat` per file; files are re-read only when changed) and
    /// picks the collateral for `quote_fmspc`. Returns whether anything changed.
    pub(super) fn select(
        &self,
        quote_fmspc: Option<&str>,
        now: SystemTime,
    ) -> Result<(Arc<CollateralFile>, bool), DcapError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| {
            DcapError::NoCollateral(format!("cannot read {}: {e}", self.dir.display()))
        })?;
        let mut files = lock(&self.files);
        let mut seen = Vec::new();
        let mut changed = false;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().ok();
            let len = meta.len();
            seen.push(path.clone());
            if files
                .get(&path)
                .is_some_and(|f| f.modified == modified && f.len == len)
            {
                continue;
            }
            let parsed = load_collateral_json(&path)
                .map(|c| Arc::new(CollateralFile::new(c)))
                .map_err(|e| e.to_string());
            match &parsed {
                Ok(_) => tracing::debug!(path = %path.display(), "loaded DCAP collateral"),
                Err(error) => tracing::warn!(%error, "unusable DCAP collateral file"),
            }
            files.insert(
                path,
                LoadedFile {
                    modified,
                    len,
                    parsed,
                },
            );
            changed = true;
        }
        let before = files.len();
        files.retain(|path, _| seen.contains(path));
        changed |= files.len() != before;

        let usable: Vec<&Arc<CollateralFile>> = files
            .values()
            .filter_map(|f| f.parsed.as_ref().ok())
            .collect();
        let chosen = match quote_fmspc {
            Some(fmspc) => choose_newest_valid(
                usable
                    .iter()
                    .copied()
                    .filter(|f| f.fmspc.as_deref() == Some(fmspc)),
                unix_secs(now),
            )
            .ok_or_else(|| {
                DcapError::NoCollateral(format!(
                    "no collateral file for FMSPC {fmspc} in {}",
                    self.dir.display()
                ))
            })?,
            // Without a PCK certificate in the quote there is no FMSPC to match; a single
            // file is then the operator's unambiguous choice.
            None => match usable.as_slice() {
                [only] => (*only).clone(),
                _ => {
                    return Err(DcapError::NoCollateral(format!(
                        "the quote names no FMSPC and {} holds {} collateral files",
                        self.dir.display(),
                        usable.len()
                    )))
                }
            },
        };
        Ok((chosen, changed))
    }
}

/// Among bundles for one platform, the newest whose TCB info is valid at `now`, else the
/// newest (whose expiry the date check then reports).
fn choose_newest_valid<'a>(
    candidates: impl Iterator<Item = &'a Arc<CollateralFile>>,
    now: u64,
) -> Option<Arc<CollateralFile>> {
    candidates
        .max_by_key(|f| match f.tcb_window {
            Some((issued, next_update)) => (issued <= now && now <= next_update, issued),
            None => (false, 0),
        })
        .cloned()
}

/// Fails with a typed error if any dated piece of the collateral, or a certificate in the
/// quote's PCK chain, is outside its validity at `now`. Unparsable pieces are skipped:
/// dcap-qvl refuses them with its own message.
pub(super) fn check_collateral_dates(
    collateral: &QuoteCollateralV3,
    quote: &dcap_qvl::quote::Quote,
    now: SystemTime,
) -> Result<(), DcapError> {
    let now_secs = unix_secs(now);
    let mut pieces: Vec<(String, u64, Option<u64>)> = Vec::new();
    for (name, json) in [
        ("TCB info", &collateral.tcb_info),
        ("QE identity", &collateral.qe_identity),
    ] {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Dates {
            issue_date: String,
            next_update: String,
        }
        if let Ok(dates) = serde_json::from_str::<Dates>(json) {
            if let (Some(issued), Some(next)) = (
                parse_rfc3339(&dates.issue_date),
                parse_rfc3339(&dates.next_update),
            ) {
                pieces.push((name.to_string(), issued, Some(next)));
            }
        }
    }
    for (name, der) in [
        ("root CA CRL", &collateral.root_ca_crl),
        ("PCK CRL", &collateral.pck_crl),
    ] {
        if let Ok((_, crl)) = x509_parser::parse_x509_crl(der) {
            pieces.push((
                name.to_string(),
                non_negative(crl.last_update().timestamp()),
                crl.next_update().map(|t| non_negative(t.timestamp())),
            ));
        }
    }
    let pck_chain = match &collateral.pck_certificate_chain {
        Some(chain) => Some(chain.as_bytes()),
        None => quote.raw_cert_chain().ok(),
    };
    for pem_chain in [
        Some(collateral.tcb_info_issuer_chain.as_bytes()),
        Some(collateral.qe_identity_issuer_chain.as_bytes()),
        Some(collateral.pck_crl_issuer_chain.as_bytes()),
        pck_chain,
    ]
    .into_iter()
    .flatten()
    {
        for pem in x509_parser::pem::Pem::iter_from_buffer(pem_chain).flatten() {
            if let Ok(cert) = pem.parse_x509() {
                let validity = cert.validity();
                pieces.push((
                    format!("certificate \"{}\"", cert.subject()),
                    non_negative(validity.not_before.timestamp()),
                    Some(non_negative(validity.not_after.timestamp())),
                ));
            }
        }
    }

    // Report the piece that expired first, which is the one to refresh.
    if let Some((piece, _, Some(expired_at))) = pieces
        .iter()
        .filter(|(_, _, until)| until.is_some_and(|until| now_secs > until))
        .min_by_key(|(_, _, until)| *until)
    {
        return Err(DcapError::CollateralExpired {
            piece: piece.clone(),
            expired_at: from_unix_secs(*expired_at),
            now,
        });
    }
    if let Some((piece, valid_from, _)) = pieces
        .iter()
        .filter(|(_, from, _)| now_secs < *from)
        .max_by_key(|(_, from, _)| *from)
    {
        return Err(DcapError::CollateralNotYetValid {
            piece: piece.clone(),
            valid_from: from_unix_secs(*valid_from),
            now,
        });
    }
    Ok(())
}

fn non_negative(secs: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0)
}

/// Unix seconds of `time`; times before 1970 count as 0, which no collateral accepts.
pub(super) fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(super) fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Parses the RFC 3339 UTC timestamps Intel's collateral uses (`2025-06-19T10:16:03Z`,
/// optionally with fractional seconds, which are dropped). Offsets other than `Z` are not
/// used by Intel and are refused.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = bytes.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    if bytes.get(4) != Some(&b'-')
        || bytes.get(7) != Some(&b'-')
        || !matches!(bytes.get(10), Some(b'T' | b't'))
        || bytes.get(13) != Some(&b':')
        || bytes.get(16) != Some(&b':')
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = bytes.get(19..)?;
    if let [b'.', tail @ ..] = rest {
        let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        rest = tail.get(digits..)?;
    }
    if !matches!(rest, [b'Z' | b'z']) {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm);
/// `None` before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = i64::try_from(year).ok()? - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::try_from(month).ok()?;
    let day = i64::try_from(day).ok()?;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    u64::try_from(era * 146_097 + day_of_era - 719_468).ok()
}

/// `time` as `YYYY-MM-DDTHH:MM:SSZ`, for error messages.
pub(super) fn rfc3339(time: SystemTime) -> String {
    let secs = unix_secs(time);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Inverse of `days_from_civil` (Hinnant's civil_from_days).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_intel_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2025-06-19T10:16:03Z"), Some(1_750_328_163));
        assert_eq!(
            parse_rfc3339("2025-06-19T10:16:03.123Z"),
            Some(1_750_328_163)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_rfc3339("2025-06-19T10:16:03+01:00"), None);
        assert_eq!(parse_rfc3339("2025-13-19T10:16:03Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_rfc3339(""), None);
    }

    #[test]
    fn formats_timestamps() {
        assert_eq!(
            rfc3339(from_unix_secs(1_750_328_163)),
            "2025-06-19T10:16:03Z"
        );
        assert_eq!(
            rfc3339(from_unix_secs(1_709_164_800)),
            "2024-02-29T00:00:00Z"
        );
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
