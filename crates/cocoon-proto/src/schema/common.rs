//! Types shared by several hops: token usage, HTTP envelopes, the parameters each party announces
//! and the proxy's signed payment.

use super::flag;
use crate::tl::{
    crc32, write_bool, write_i32, write_u32, TlBoxed, TlError, TlField, TlObject, TlReader,
};

tl_struct! {
    /// `tokensUsed`: usage counters of one request.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    TokensUsed = "tokensUsed prompt_tokens_used:long cached_tokens_used:long completion_tokens_used:long reasoning_tokens_used:long total_tokens_used:long = TokensUsed" {
        prompt_tokens_used: i64,
        cached_tokens_used: i64,
        completion_tokens_used: i64,
        reasoning_tokens_used: i64,
        total_tokens_used: i64,
    }
}

tl_struct! {
    /// `http.header`: one HTTP header line.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    HttpHeader = "http.header name:string value:string = http.Header" {
        name: String,
        value: String,
    }
}

tl_struct! {
    /// `http.request`: an HTTP request carried inside `client.runQueryEx` / `proxy.runQueryEx`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    HttpRequest = "http.request method:string url:string http_version:string headers:vector http.header payload:bytes = http.Response" {
        method: String,
        url: String,
        http_version: String,
        headers: Vec<HttpHeader>,
        payload: Vec<u8>,
    }
}

tl_struct! {
    /// `http.response`: the head (and first chunk) of an answer.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    HttpResponse = "http.response http_version:string status_code:int reason:string headers:vector http.header payload:bytes = http.Response" {
        http_version: String,
        status_code: i32,
        reason: String,
        headers: Vec<HttpHeader>,
        payload: Vec<u8>,
    }
}

/// An inclusive range of protocol versions a party speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtoVersionRange {
    /// Lowest version spoken.
    pub min: i32,
    /// Highest version spoken.
    pub max: i32,
}

/// The `flags.0` group of `worker.params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkerLimits {
    /// Whether the worker runs in test mode.
    pub is_test: bool,
    /// How many proxies the worker connects to (its capacity is split between them).
    pub proxy_cnt: i32,
    /// Concurrent requests the worker accepts in total.
    pub max_active_requests: i32,
}

/// `worker.params` (pinned id): what a worker announces when it connects to a proxy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerParams {
    /// The worker owner's TON address.
    pub worker_owner_address: String,
    /// The model the worker serves.
    pub model: String,
    /// Price coefficient, 1000 = 1.0×.
    pub coefficient: i32,
    /// Capacity announcement (`flags.0`).
    pub limits: Option<WorkerLimits>,
    /// Protocol versions spoken (`flags.1`).
    pub proto_version: Option<ProtoVersionRange>,
    /// The worker stops a request when told `proxy.cancelQuery` (`flags.16`, an extension of
    /// this implementation: the bit carries no field, so the reference's parser, which reads
    /// only the bits it knows, ignores it, and a proxy sends cancels only to workers that set it).
    pub supports_cancel: bool,
}

/// The `worker.params` flag bit of [`WorkerParams::supports_cancel`].
pub const WORKER_PARAMS_CANCEL_FLAG: u32 = 1 << 16;

impl TlObject for WorkerParams {
    const CONSTRUCTOR: u32 = 0x869c73ed;
    const SCHEMA: &'static str = "worker.params flags:# worker_owner_address:string model:string coefficient:int is_test:flags.0?Bool proxy_cnt:flags.0?int max_active_requests:flags.0?int min_proto_version:flags.1?int max_proto_version:flags.1?int = worker.Params";

    fn write_bare(&self, out: &mut Vec<u8>) {
        let mut flags =
            u32::from(self.limits.is_some()) | u32::from(self.proto_version.is_some()) << 1;
        if self.supports_cancel {
            flags |= WORKER_PARAMS_CANCEL_FLAG;
        }
        write_u32(out, flags);
        self.worker_owner_address.write_field(out);
        self.model.write_field(out);
        write_i32(out, self.coefficient);
        if let Some(limits) = &self.limits {
            write_bool(out, limits.is_test);
            write_i32(out, limits.proxy_cnt);
            write_i32(out, limits.max_active_requests);
        }
        if let Some(range) = &self.proto_version {
            write_i32(out, range.min);
            write_i32(out, range.max);
        }
    }

    fn read_bare(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        let flags = r.read_u32()?;
        let worker_owner_address = r.string()?;
        let model = r.string()?;
        let coefficient = r.read_i32()?;
        let limits = if flag(flags, 0) {
            Some(WorkerLimits {
                is_test: r.bool()?,
                proxy_cnt: r.read_i32()?,
                max_active_requests: r.read_i32()?,
            })
        } else {
            None
        };
        let proto_version = read_version_range(r, flag(flags, 1))?;
        Ok(Self {
            worker_owner_address,
            model,
            coefficient,
            limits,
            proto_version,
            supports_cancel: flags & WORKER_PARAMS_CANCEL_FLAG != 0,
        })
    }
}

fn read_version_range(
    r: &mut TlReader<'_>,
    present: bool,
) -> Result<Option<ProtoVersionRange>, TlError> {
    if !present {
        return Ok(None);
    }
    Ok(Some(ProtoVersionRange {
        min: r.read_i32()?,
        max: r.read_i32()?,
    }))
}

/// `proxy.params` (pinned id): what a proxy announces to clients and workers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyParams {
    /// The proxy's Ed25519 public key (signs payments).
    pub proxy_public_key: [u8; 32],
    /// The proxy owner's TON address.
    pub proxy_owner_address: String,
    /// The proxy contract's TON address.
    pub proxy_sc_address: String,
    /// Whether the proxy runs in test mode (`flags.0`).
    pub is_test: Option<bool>,
    /// The negotiated protocol version (`flags.1`).
    pub proto_version: Option<i32>,
}

impl TlObject for ProxyParams {
    const CONSTRUCTOR: u32 = 0xd5c5609f;
    const SCHEMA: &'static str = "proxy.params flags:# proxy_public_key:int256 proxy_owner_address:string proxy_sc_address:string is_test:flags.0?Bool proto_version:flags.1?int = proxy.Params";

    fn write_bare(&self, out: &mut Vec<u8>) {
        let flags =
            u32::from(self.is_test.is_some()) | u32::from(self.proto_version.is_some()) << 1;
        write_u32(out, flags);
        self.proxy_public_key.write_field(out);
        self.proxy_owner_address.write_field(out);
        self.proxy_sc_address.write_field(out);
        if let Some(is_test) = self.is_test {
            write_bool(out, is_test);
        }
        if let Some(version) = self.proto_version {
            write_i32(out, version);
        }
    }

    fn read_bare(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        let flags = r.read_u32()?;
        let proxy_public_key = r.int256()?;
        let proxy_owner_address = r.string()?;
        let proxy_sc_address = r.string()?;
        let is_test = if flag(flags, 0) {
            Some(r.bool()?)
        } else {
            None
        };
        let proto_version = if flag(flags, 1) {
            Some(r.read_i32()?)
        } else {
            None
        };
        Ok(Self {
            proxy_public_key,
            proxy_owner_address,
            proxy_sc_address,
            is_test,
            proto_version,
        })
    }
}

/// `client.params` (pinned id): what a client announces when it connects to a proxy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientParams {
    /// The client owner's TON address.
    pub client_owner_address: String,
    /// Whether the client runs in test mode (`flags.0`).
    pub is_test: Option<bool>,
    /// Protocol versions spoken (`flags.1`).
    pub proto_version: Option<ProtoVersionRange>,
}

impl TlObject for ClientParams {
    const CONSTRUCTOR: u32 = 0x40fdca64;
    const SCHEMA: &'static str = "client.params flags:# client_owner_address:string is_test:flags.0?Bool min_proto_version:flags.1?int max_proto_version:flags.1?int = client.Params";

    fn write_bare(&self, out: &mut Vec<u8>) {
        let flags =
            u32::from(self.is_test.is_some()) | u32::from(self.proto_version.is_some()) << 1;
        write_u32(out, flags);
        self.client_owner_address.write_field(out);
        if let Some(is_test) = self.is_test {
            write_bool(out, is_test);
        }
        if let Some(range) = &self.proto_version {
            write_i32(out, range.min);
            write_i32(out, range.max);
        }
    }

    fn read_bare(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        let flags = r.read_u32()?;
        let client_owner_address = r.string()?;
        let is_test = if flag(flags, 0) {
            Some(r.bool()?)
        } else {
            None
        };
        let proto_version = read_version_range(r, flag(flags, 1))?;
        Ok(Self {
            client_owner_address,
            is_test,
            proto_version,
        })
    }
}

/// `proxy.SignedPayment`: the proxy's latest signed statement of what it owes (boxed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SignedPayment {
    /// `proxy.signedPayment`: a serialised signed payment message.
    Signed {
        /// The signed message bytes.
        data: Vec<u8>,
    },
    /// `proxy.signedPaymentEmpty`: nothing signed yet.
    Empty,
}

impl SignedPayment {
    /// Declaration of `proxy.signedPayment`.
    pub const SIGNED_SCHEMA: &'static str = "proxy.signedPayment data:bytes = proxy.SignedPayment";
    /// Constructor id of `proxy.signedPayment`.
    pub const SIGNED_CONSTRUCTOR: u32 = crc32(Self::SIGNED_SCHEMA.as_bytes());
    /// Declaration of `proxy.signedPaymentEmpty`.
    pub const EMPTY_SCHEMA: &'static str = "proxy.signedPaymentEmpty = proxy.SignedPayment";
    /// Constructor id of `proxy.signedPaymentEmpty`.
    pub const EMPTY_CONSTRUCTOR: u32 = crc32(Self::EMPTY_SCHEMA.as_bytes());
}

impl TlBoxed for SignedPayment {
    fn write_boxed(&self, out: &mut Vec<u8>) {
        match self {
            Self::Signed { data } => {
                write_u32(out, Self::SIGNED_CONSTRUCTOR);
                data.write_field(out);
            }
            Self::Empty => write_u32(out, Self::EMPTY_CONSTRUCTOR),
        }
    }

    fn read_boxed(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        match r.read_u32()? {
            Self::SIGNED_CONSTRUCTOR => Ok(Self::Signed { data: r.bytes()? }),
            Self::EMPTY_CONSTRUCTOR => Ok(Self::Empty),
            found => Err(TlError::UnknownConstructor {
                type_name: "SignedPayment",
                found,
            }),
        }
    }
}

boxed_field!(SignedPayment);
