//! Collecting this node's NVIDIA GPU evidence through NVML, the NVIDIA driver's management
//! library, loaded at run time (`libnvidia-ml.so.1`), so that nodes without the driver need
//! neither the library nor anything built against it.
//!
//! Per GPU: `nvmlDeviceGetConfComputeGpuAttestationReport` with our nonce (the SPDM
//! GET_MEASUREMENTS request and response the driver exchanged with the GPU) and
//! `nvmlDeviceGetConfComputeGpuCertificate` (the attestation certificate chain, PEM, leaf
//! first). The structure layouts are those of `nvml.h` (driver R535 and later). The GPUs must
//! be in confidential-computing mode, or NVML refuses.
//!
//! This cannot be exercised without the hardware; the error paths (no library, no symbol, no
//! GPU, bad PEM) are tested.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::fmt;

use super::{GpuAttestation, GpuError, GpuEvidence, GpuEvidenceKind, MAX_GPUS};

/// Where the NVIDIA driver installs NVML (found through the dynamic loader's search path).
pub const DEFAULT_NVML_LIBRARY: &str = "libnvidia-ml.so.1";

/// `NVML_CC_GPU_CEC_NONCE_SIZE`.
const NONCE_SIZE: usize = 0x20;
/// `NVML_CC_GPU_ATTESTATION_REPORT_SIZE`.
const ATTESTATION_REPORT_SIZE: usize = 0x2000;
/// `NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE`.
const CEC_ATTESTATION_REPORT_SIZE: usize = 0x1000;
/// `NVML_GPU_CERT_CHAIN_SIZE`.
const CERT_CHAIN_SIZE: usize = 0x1000;
/// `NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE`.
const ATTESTATION_CERT_CHAIN_SIZE: usize = 0x1400;

/// `nvmlConfComputeGpuAttestationReport_t`.
#[repr(C)]
struct AttestationReport {
    is_cec_attestation_report_present: c_uint,
    attestation_report_size: c_uint,
    cec_attestation_report_size: c_uint,
    nonce: [u8; NONCE_SIZE],
    attestation_report: [u8; ATTESTATION_REPORT_SIZE],
    cec_attestation_report: [u8; CEC_ATTESTATION_REPORT_SIZE],
}

/// `nvmlConfComputeGpuCertificate_t`.
#[repr(C)]
struct Certificate {
    cert_chain_size: c_uint,
    attestation_cert_chain_size: c_uint,
    cert_chain: [u8; CERT_CHAIN_SIZE],
    attestation_cert_chain: [u8; ATTESTATION_CERT_CHAIN_SIZE],
}

type Device = *mut c_void;
type Init = unsafe extern "C" fn() -> c_int;
type Count = unsafe extern "C" fn(*mut c_uint) -> c_int;
type HandleByIndex = unsafe extern "C" fn(c_uint, *mut Device) -> c_int;
type GetReport = unsafe extern "C" fn(Device, *mut AttestationReport) -> c_int;
type GetCertificate = unsafe extern "C" fn(Device, *mut Certificate) -> c_int;
type ErrorString = unsafe extern "C" fn(c_int) -> *const c_char;

/// NVML, loaded and initialised.
pub struct Nvml {
    library: *mut c_void,
    count: Count,
    handle_by_index: HandleByIndex,
    report: GetReport,
    certificate: GetCertificate,
    error_string: ErrorString,
}

// SAFETY: NVML's functions are thread-safe (nvml.h: "all NVML calls are thread-safe"); the
// library handle is only passed to dlclose once, in Drop.
unsafe impl Send for Nvml {}
// SAFETY: as above; no method mutates the struct.
unsafe impl Sync for Nvml {}

impl fmt::Debug for Nvml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nvml")
    }
}

fn unavailable(message: String) -> GpuError {
    GpuError::Unavailable(message)
}

/// The dynamic loader's last error.
fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl call.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        return "unknown dynamic loader error".into();
    }
    // SAFETY: not null, NUL-terminated (above).
    unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}

impl Nvml {
    /// Loads NVML from `library` (normally [`DEFAULT_NVML_LIBRARY`]), finds its functions and
    /// initialises it. Fails with a message naming the library when the driver is absent.
    pub fn open(library: &str) -> Result<Nvml, GpuError> {
        let name = CString::new(library)
            .map_err(|_| unavailable(format!("NVML library path {library:?} contains NUL")))?;
        // SAFETY: a valid C string; loading NVML runs no code of ours.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(unavailable(format!(
                "cannot load NVML ({library}): {}; is the NVIDIA driver installed?",
                dl_error()
            )));
        }
        let symbol = |name: &str| -> Result<*mut c_void, GpuError> {
            let c_name = CString::new(name).map_err(|_| unavailable(name.into()))?;
            // SAFETY: handle is a live dlopen handle, c_name a valid C string.
            let address = unsafe { libc::dlsym(handle, c_name.as_ptr()) };
            if address.is_null() {
                return Err(unavailable(format!(
                    "{library} lacks {name}: the driver is too old for confidential computing (R535 or later is needed)"
                )));
            }
            Ok(address)
        };
        let resolved = (|| {
            Ok::<_, GpuError>((
                symbol("nvmlInit_v2")?,
                symbol("nvmlDeviceGetCount_v2")?,
                symbol("nvmlDeviceGetHandleByIndex_v2")?,
                symbol("nvmlDeviceGetConfComputeGpuAttestationReport")?,
                symbol("nvmlDeviceGetConfComputeGpuCertificate")?,
                symbol("nvmlErrorString")?,
            ))
        })();
        let (init, count, handle_by_index, report, certificate, error_string) = match resolved {
            Ok(symbols) => symbols,
            Err(error) => {
                // SAFETY: handle came from dlopen and is closed once.
                unsafe { libc::dlclose(handle) };
                return Err(error);
            }
        };
        // SAFETY: each address is the named NVML function, whose C signature (nvml.h) is the
        // function type it is cast to.
        let nvml = unsafe {
            Nvml {
                library: handle,
                count: std::mem::transmute::<*mut c_void, Count>(count),
                handle_by_index: std::mem::transmute::<*mut c_void, HandleByIndex>(handle_by_index),
                report: std::mem::transmute::<*mut c_void, GetReport>(report),
                certificate: std::mem::transmute::<*mut c_void, GetCertificate>(certificate),
                error_string: std::mem::transmute::<*mut c_void, ErrorString>(error_string),
            }
        };
        // SAFETY: nvmlInit_v2 takes no arguments.
        let status = unsafe { std::mem::transmute::<*mut c_void, Init>(init)() };
        nvml.check("nvmlInit_v2", status)?;
        Ok(nvml)
    }

    fn check(&self, call: &str, status: c_int) -> Result<(), GpuError> {
        if status == 0 {
            return Ok(());
        }
        // SAFETY: nvmlErrorString returns a static NUL-terminated string for any status.
        let text = unsafe { (self.error_string)(status) };
        let text = if text.is_null() {
            String::new()
        } else {
            // SAFETY: not null, static and NUL-terminated (above).
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        };
        Err(unavailable(format!("{call} failed: {text} ({status})")))
    }

    /// Every GPU's evidence for `nonce`: its attestation report and certificate chain.
    pub fn collect(&self, nonce: &[u8; 32]) -> Result<GpuEvidence, GpuError> {
        let mut count: c_uint = 0;
        // SAFETY: count is a valid out-pointer.
        self.check("nvmlDeviceGetCount_v2", unsafe { (self.count)(&mut count) })?;
        let count = count as usize;
        if count == 0 || count > MAX_GPUS {
            return Err(unavailable(format!(
                "NVML reports {count} GPUs (1 to {MAX_GPUS} can be attested)"
            )));
        }
        let mut gpus = Vec::with_capacity(count);
        for index in 0..count {
            let mut device: Device = std::ptr::null_mut();
            // SAFETY: device is a valid out-pointer; index < count.
            self.check("nvmlDeviceGetHandleByIndex_v2", unsafe {
                (self.handle_by_index)(index as c_uint, &mut device)
            })?;
            // The structures are large (12 KiB and 9 KiB): on the heap. All-zero bytes are a
            // valid value of each (integers and byte arrays).
            let mut report: Box<AttestationReport> = Box::new(AttestationReport {
                is_cec_attestation_report_present: 0,
                attestation_report_size: 0,
                cec_attestation_report_size: 0,
                nonce: *nonce,
                attestation_report: [0; ATTESTATION_REPORT_SIZE],
                cec_attestation_report: [0; CEC_ATTESTATION_REPORT_SIZE],
            });
            // SAFETY: device came from NVML; report points to a live struct of nvml.h's layout.
            self.check("nvmlDeviceGetConfComputeGpuAttestationReport", unsafe {
                (self.report)(device, &mut *report)
            })?;
            let report_len = (report.attestation_report_size as usize).min(ATTESTATION_REPORT_SIZE);
            let mut certificate = Box::new(Certificate {
                cert_chain_size: 0,
                attestation_cert_chain_size: 0,
                cert_chain: [0; CERT_CHAIN_SIZE],
                attestation_cert_chain: [0; ATTESTATION_CERT_CHAIN_SIZE],
            });
            // SAFETY: as above.
            self.check("nvmlDeviceGetConfComputeGpuCertificate", unsafe {
                (self.certificate)(device, &mut *certificate)
            })?;
            let chain_len =
                (certificate.attestation_cert_chain_size as usize).min(ATTESTATION_CERT_CHAIN_SIZE);
            let chain = chain_from_pem(&certificate.attestation_cert_chain[..chain_len])
                .map_err(|e| unavailable(format!("GPU {index} certificate chain: {e}")))?;
            gpus.push(GpuAttestation {
                report: report.attestation_report[..report_len].to_vec(),
                chain,
            });
        }
        Ok(GpuEvidence {
            kind: GpuEvidenceKind::Nvidia,
            gpus,
        })
    }
}

impl Drop for Nvml {
    fn drop(&mut self) {
        // NVML stays initialised (another user in the process may share it); the handle is
        // released.
        // SAFETY: library came from dlopen and is closed once.
        unsafe { libc::dlclose(self.library) };
    }
}

/// The certificates of a PEM chain as NVML returns it (concatenated `CERTIFICATE` blocks,
/// leaf first), as DER. Refuses anything else, and an empty chain.
pub fn chain_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut rest = pem;
    let mut chain = Vec::new();
    loop {
        let trimmed = rest.trim_ascii_start();
        // NVML pads the buffer with NULs after the last certificate.
        if trimmed.iter().all(|&b| b == 0) {
            break;
        }
        let (tail, block) = x509_parser::pem::parse_x509_pem(trimmed)
            .map_err(|e| format!("certificate {}: {e}", chain.len()))?;
        if block.label != "CERTIFICATE" {
            return Err(format!("a PEM block labelled {:?}", block.label));
        }
        chain.push(block.contents);
        rest = tail;
    }
    if chain.is_empty() {
        return Err("no certificate".into());
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_clear_error() {
        let error = Nvml::open("/nonexistent/libnvidia-ml.so.1").unwrap_err();
        assert!(
            matches!(&error, GpuError::Unavailable(m) if m.contains("/nonexistent/libnvidia-ml.so.1") && m.contains("NVIDIA driver")),
            "{error}"
        );
        assert!(matches!(
            Nvml::open("nul\0inside"),
            Err(GpuError::Unavailable(_))
        ));
    }

    #[test]
    fn a_library_without_nvml_is_refused_by_its_missing_symbols() {
        // libc is loaded in every process and has no NVML function.
        let error = Nvml::open("libc.so.6").unwrap_err();
        assert!(
            matches!(&error, GpuError::Unavailable(m) if m.contains("nvmlInit_v2")),
            "{error}"
        );
    }

    #[test]
    fn pem_chains_parse_and_garbage_is_refused() {
        assert!(chain_from_pem(b"").is_err());
        assert!(chain_from_pem(b"\0\0\0").is_err());
        assert!(chain_from_pem(b"not pem").is_err());
        let key_block = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(chain_from_pem(key_block).is_err());
        let root = super::super::verify::NVIDIA_DEVICE_IDENTITY_ROOT_PEM.as_bytes();
        let mut two = root.to_vec();
        two.extend_from_slice(root);
        two.extend_from_slice(&[0; 16]);
        let chain = chain_from_pem(&two).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0], chain[1]);
    }
}
