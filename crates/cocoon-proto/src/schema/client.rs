//! The client→proxy hop: connection and authorisation, queries and their answers, worker
//! listings.

use super::{
    flag, ClientParams, ProxyClientRequestPayment, ProxyParams, SignedPayment, TokensUsed,
};
use crate::tl::{
    crc32, write_f64, write_i32, write_i64, write_int256, write_u32, TlBoxed, TlError, TlField,
    TlObject, TlReader,
};

/// `client.ProxyConnectionAuth`: how the proxy wants the client to prove it owns its contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProxyConnectionAuth {
    /// `client.proxyConnectionAuthShort`: send a secret whose SHA-256 is `secret_hash`.
    Short {
        /// SHA-256 of the secret stored on the client contract.
        secret_hash: [u8; 32],
        /// Nonce to bind the answer to this connection.
        nonce: i64,
    },
    /// `client.proxyConnectionAuthLong`: register on chain with this nonce.
    Long {
        /// Nonce to put into the on-chain registration.
        nonce: i64,
    },
}

impl ProxyConnectionAuth {
    /// Declaration of `client.proxyConnectionAuthShort`.
    pub const SHORT_SCHEMA: &'static str =
        "client.proxyConnectionAuthShort secret_hash:int256 nonce:long = client.ProxyConnectionAuth";
    /// Constructor id of `client.proxyConnectionAuthShort`.
    pub const SHORT_CONSTRUCTOR: u32 = crc32(Self::SHORT_SCHEMA.as_bytes());
    /// Declaration of `client.proxyConnectionAuthLong`.
    pub const LONG_SCHEMA: &'static str =
        "client.proxyConnectionAuthLong nonce:long = client.ProxyConnectionAuth";
    /// Constructor id of `client.proxyConnectionAuthLong`.
    pub const LONG_CONSTRUCTOR: u32 = crc32(Self::LONG_SCHEMA.as_bytes());
}

impl TlBoxed for ProxyConnectionAuth {
    fn write_boxed(&self, out: &mut Vec<u8>) {
        match self {
            Self::Short { secret_hash, nonce } => {
                write_u32(out, Self::SHORT_CONSTRUCTOR);
                write_int256(out, secret_hash);
                write_i64(out, *nonce);
            }
            Self::Long { nonce } => {
                write_u32(out, Self::LONG_CONSTRUCTOR);
                write_i64(out, *nonce);
            }
        }
    }

    fn read_boxed(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        match r.read_u32()? {
            Self::SHORT_CONSTRUCTOR => Ok(Self::Short {
                secret_hash: r.int256()?,
                nonce: r.read_i64()?,
            }),
            Self::LONG_CONSTRUCTOR => Ok(Self::Long {
                nonce: r.read_i64()?,
            }),
            found => Err(TlError::UnknownConstructor {
                type_name: "ProxyConnectionAuth",
                found,
            }),
        }
    }
}

boxed_field!(ProxyConnectionAuth);

/// `client.AuthorizationWithProxy`: the proxy's verdict on an authorisation attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthorizationWithProxy {
    /// `client.authorizationWithProxySuccess`.
    Success {
        /// The latest signed payment for this client.
        signed_payment: SignedPayment,
        /// Tokens the proxy has recorded for this client.
        tokens_committed_to_db: i64,
        /// Tokens the client's balance covers.
        max_tokens: i64,
    },
    /// `client.authorizationWithProxyFailed`.
    Failed {
        /// Machine-readable error code.
        error_code: i32,
        /// Human-readable reason.
        error: String,
    },
}

impl AuthorizationWithProxy {
    /// Declaration of `client.authorizationWithProxySuccess`.
    pub const SUCCESS_SCHEMA: &'static str = "client.authorizationWithProxySuccess signed_payment:proxy.SignedPayment tokens_committed_to_db:long max_tokens:long = client.AuthorizationWithProxy";
    /// Constructor id of `client.authorizationWithProxySuccess`.
    pub const SUCCESS_CONSTRUCTOR: u32 = crc32(Self::SUCCESS_SCHEMA.as_bytes());
    /// Declaration of `client.authorizationWithProxyFailed`.
    pub const FAILED_SCHEMA: &'static str = "client.authorizationWithProxyFailed error_code:int error:string = client.AuthorizationWithProxy";
    /// Constructor id of `client.authorizationWithProxyFailed`.
    pub const FAILED_CONSTRUCTOR: u32 = crc32(Self::FAILED_SCHEMA.as_bytes());
}

impl TlBoxed for AuthorizationWithProxy {
    fn write_boxed(&self, out: &mut Vec<u8>) {
        match self {
            Self::Success {
                signed_payment,
                tokens_committed_to_db,
                max_tokens,
            } => {
                write_u32(out, Self::SUCCESS_CONSTRUCTOR);
                signed_payment.write_boxed(out);
                write_i64(out, *tokens_committed_to_db);
                write_i64(out, *max_tokens);
            }
            Self::Failed { error_code, error } => {
                write_u32(out, Self::FAILED_CONSTRUCTOR);
                write_i32(out, *error_code);
                error.write_field(out);
            }
        }
    }

    fn read_boxed(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        match r.read_u32()? {
            Self::SUCCESS_CONSTRUCTOR => Ok(Self::Success {
                signed_payment: SignedPayment::read_boxed(r)?,
                tokens_committed_to_db: r.read_i64()?,
                max_tokens: r.read_i64()?,
            }),
            Self::FAILED_CONSTRUCTOR => Ok(Self::Failed {
                error_code: r.read_i32()?,
                error: r.string()?,
            }),
            found => Err(TlError::UnknownConstructor {
                type_name: "AuthorizationWithProxy",
                found,
            }),
        }
    }
}

tl_struct! {
    /// `client.connectToProxy` (function): the client's first query on a connection.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    ClientConnectToProxy = "client.connectToProxy params:client.params min_config_version:int = client.ConnectedToProxy" {
        params: ClientParams,
        min_config_version: i32,
    }
}

tl_struct! {
    /// `client.connectedToProxy`: the answer to [`ClientConnectToProxy`].
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    ClientConnectedToProxy = "client.connectedToProxy params:proxy.params client_sc_address:string auth:client.ProxyConnectionAuth signed_payment:proxy.SignedPayment = client.ConnectedToProxy" {
        params: ProxyParams,
        client_sc_address: String,
        auth: ProxyConnectionAuth,
        signed_payment: SignedPayment,
    }
}

tl_struct! {
    /// `client.authorizeWithProxyShort` (function): answers [`ProxyConnectionAuth::Short`].
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    ClientAuthorizeWithProxyShort = "client.authorizeWithProxyShort data:bytes = client.AuthorizationWithProxy" {
        data: Vec<u8>,
    }
}

tl_struct! {
    /// `client.authorizeWithProxyLong` (function): answers [`ProxyConnectionAuth::Long`] once
    /// the registration is on chain.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    ClientAuthorizeWithProxyLong = "client.authorizeWithProxyLong = client.AuthorizationWithProxy" {}
}

tl_struct_flag0! {
    /// `client.runQueryEx` (one-way, as `tcp.packet`): run an inference request.
    #[derive(Debug, Clone, PartialEq)]
    ClientRunQueryEx = "client.runQueryEx model_name:string query:bytes max_coefficient:int max_tokens:int timeout:double request_id:int256 min_config_version:int flags:# enable_debug:flags.0?Bool = client.QueryAnswerEx" {
        model_name: String,
        /// A boxed [`super::HttpRequest`].
        query: Vec<u8>,
        max_coefficient: i32,
        max_tokens: i32,
        /// Seconds.
        timeout: f64,
        request_id: [u8; 32],
        min_config_version: i32,
        ;
        enable_debug: Option<bool>,
    }
}

/// Debug strings in [`ClientQueryFinalInfo`] (its `flags.0` group).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FinalInfoDebug {
    /// Worker-side debug text.
    pub worker_debug: String,
    /// Proxy-side debug text.
    pub proxy_debug: String,
}

/// Timestamps in [`ClientQueryFinalInfo`] (its `flags.1` group), Unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientTimings {
    /// When the proxy received the request.
    pub proxy_start_time: f64,
    /// When the proxy sent the final answer.
    pub proxy_end_time: f64,
    /// When the worker started.
    pub worker_start_time: f64,
    /// When the worker finished.
    pub worker_end_time: f64,
}

/// `client.queryFinalInfo`: usage and diagnostics attached to the last answer of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientQueryFinalInfo {
    /// Token usage to bill.
    pub tokens_used: TokensUsed,
    /// Debug strings (`flags.0`).
    pub debug: Option<FinalInfoDebug>,
    /// Timestamps (`flags.1`).
    pub timings: Option<ClientTimings>,
    /// The worker's signed receipt of a sealed request, relayed unchanged (`flags.2`, this
    /// implementation's extension: only in answers to `client.runSealedQuery`).
    pub receipt: Option<Vec<u8>>,
    /// The proxy's signed charge for that receipt (`flags.3`, our extension, only with a
    /// receipt): what it charged, signed with its attested certificate's key.
    pub charge: Option<Vec<u8>>,
}

impl TlObject for ClientQueryFinalInfo {
    // The reference's constructor: the receipt hides behind a flag it never sets.
    const CONSTRUCTOR: u32 = crc32(Self::SCHEMA.as_bytes());
    const SCHEMA: &'static str = "client.queryFinalInfo flags:# tokens_used:tokensUsed worker_debug:flags.0?string proxy_debug:flags.0?string proxy_start_time:flags.1?double proxy_end_time:flags.1?double worker_start_time:flags.1?double worker_end_time:flags.1?double = client.QueryFinalInfo";

    fn write_bare(&self, out: &mut Vec<u8>) {
        let flags = u32::from(self.debug.is_some())
            | u32::from(self.timings.is_some()) << 1
            | u32::from(self.receipt.is_some()) << 2
            | u32::from(self.charge.is_some()) << 3;
        write_u32(out, flags);
        self.tokens_used.write_bare(out);
        if let Some(debug) = &self.debug {
            debug.worker_debug.write_field(out);
            debug.proxy_debug.write_field(out);
        }
        if let Some(timings) = &self.timings {
            write_f64(out, timings.proxy_start_time);
            write_f64(out, timings.proxy_end_time);
            write_f64(out, timings.worker_start_time);
            write_f64(out, timings.worker_end_time);
        }
        if let Some(receipt) = &self.receipt {
            receipt.write_field(out);
        }
        if let Some(charge) = &self.charge {
            charge.write_field(out);
        }
    }

    fn read_bare(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        let flags = r.read_u32()?;
        let tokens_used = TokensUsed::read_bare(r)?;
        let debug = if flag(flags, 0) {
            Some(FinalInfoDebug {
                worker_debug: r.string()?,
                proxy_debug: r.string()?,
            })
        } else {
            None
        };
        let timings = if flag(flags, 1) {
            Some(ClientTimings {
                proxy_start_time: r.read_f64()?,
                proxy_end_time: r.read_f64()?,
                worker_start_time: r.read_f64()?,
                worker_end_time: r.read_f64()?,
            })
        } else {
            None
        };
        let receipt = if flag(flags, 2) {
            Some(r.bytes()?)
        } else {
            None
        };
        let charge = if flag(flags, 3) {
            Some(r.bytes()?)
        } else {
            None
        };
        Ok(Self {
            tokens_used,
            debug,
            timings,
            receipt,
            charge,
        })
    }
}

tl_struct_flag0! {
    /// `client.queryAnswerEx`: the first answer to a request (a boxed [`super::HttpResponse`]).
    #[derive(Debug, Clone, PartialEq)]
    ClientQueryAnswerEx = "client.queryAnswerEx request_id:int256 answer:bytes flags:# final_info:flags.0?client.queryFinalInfo = client.QueryAnswerEx" {
        request_id: [u8; 32],
        answer: Vec<u8>,
        ;
        /// Present on the last answer of the request.
        final_info: Option<ClientQueryFinalInfo>,
    }
}

tl_struct_flag0! {
    /// `client.queryAnswerErrorEx`: the request failed.
    #[derive(Debug, Clone, PartialEq)]
    ClientQueryAnswerErrorEx = "client.queryAnswerErrorEx request_id:int256 error_code:int error:string flags:# final_info:flags.0?client.queryFinalInfo = client.QueryAnswerEx" {
        request_id: [u8; 32],
        error_code: i32,
        error: String,
        ;
        /// Present on the last answer of the request.
        final_info: Option<ClientQueryFinalInfo>,
    }
}

tl_struct_flag0! {
    /// `client.queryAnswerPartEx`: a further chunk of the answer body.
    #[derive(Debug, Clone, PartialEq)]
    ClientQueryAnswerPartEx = "client.queryAnswerPartEx request_id:int256 answer:bytes flags:# final_info:flags.0?client.queryFinalInfo = client.QueryAnswerEx" {
        request_id: [u8; 32],
        answer: Vec<u8>,
        ;
        /// Present on the last answer of the request.
        final_info: Option<ClientQueryFinalInfo>,
    }
}

tl_enum! {
    /// `client.QueryAnswerEx`: what the proxy sends the client about a request.
    #[derive(Debug, Clone, PartialEq)]
    ClientQueryAnswer {
        /// First answer.
        Answer(ClientQueryAnswerEx),
        /// Failure.
        Error(ClientQueryAnswerErrorEx),
        /// Further chunk.
        Part(ClientQueryAnswerPartEx),
    }
}

impl ClientQueryAnswer {
    /// The request this answer belongs to.
    pub fn request_id(&self) -> &[u8; 32] {
        match self {
            Self::Answer(answer) => &answer.request_id,
            Self::Error(error) => &error.request_id,
            Self::Part(part) => &part.request_id,
        }
    }

    /// Final usage and diagnostics; present iff this is the last answer of the request.
    pub fn final_info(&self) -> Option<&ClientQueryFinalInfo> {
        match self {
            Self::Answer(answer) => answer.final_info.as_ref(),
            Self::Error(error) => error.final_info.as_ref(),
            Self::Part(part) => part.final_info.as_ref(),
        }
    }
}

tl_struct! {
    /// `client.getWorkerTypesV2` (function): list the models on offer.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    ClientGetWorkerTypesV2 = "client.getWorkerTypesV2 = client.WorkerTypesV2" {}
}

/// `client.workerInstanceV2` (pinned id): one connected worker, as seen by the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ClientWorkerInstanceV2 {
    /// Price coefficient, 1000 = 1.0×.
    pub coefficient: i32,
    /// Requests running now.
    pub active_requests: i32,
    /// Requests it accepts at once.
    pub max_active_requests: i32,
}

impl TlObject for ClientWorkerInstanceV2 {
    const CONSTRUCTOR: u32 = 0x3ea93d00;
    const SCHEMA: &'static str = "client.workerInstanceV2 flags:# coefficient:int active_requests:int max_active_requests:int = client.WorkerInstanceV2";

    fn write_bare(&self, out: &mut Vec<u8>) {
        // No conditional fields are defined yet: the flags word is always zero.
        write_u32(out, 0);
        write_i32(out, self.coefficient);
        write_i32(out, self.active_requests);
        write_i32(out, self.max_active_requests);
    }

    fn read_bare(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        let _flags = r.read_u32()?;
        Ok(Self {
            coefficient: r.read_i32()?,
            active_requests: r.read_i32()?,
            max_active_requests: r.read_i32()?,
        })
    }
}

tl_struct! {
    /// `client.workerTypeV2`: the workers serving one model.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    ClientWorkerTypeV2 = "client.workerTypeV2 name:string workers:vector client.workerInstanceV2 = client.WorkerTypeV2" {
        name: String,
        workers: Vec<ClientWorkerInstanceV2>,
    }
}

tl_struct! {
    /// `client.workerTypesV2`: the answer to [`ClientGetWorkerTypesV2`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    ClientWorkerTypesV2 = "client.workerTypesV2 types:vector client.workerTypeV2 = client.WorkerTypesV2" {
        types: Vec<ClientWorkerTypeV2>,
    }
}

tl_enum! {
    /// Queries a client sends a proxy (as `tcp.query` data).
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    ClientToProxyQuery {
        /// Open the session.
        ConnectToProxy(ClientConnectToProxy),
        /// Short authorisation.
        AuthorizeShort(ClientAuthorizeWithProxyShort),
        /// Long authorisation.
        AuthorizeLong(ClientAuthorizeWithProxyLong),
        /// List models.
        GetWorkerTypesV2(ClientGetWorkerTypesV2),
        /// Payment status, any time after authorisation.
        UpdatePaymentStatus(ClientUpdatePaymentStatus),
        /// A refund of the client contract (defined by the schema; no runner handles it).
        RequestRefund(ClientRequestRefund),
        /// The workers of a model that take sealed requests (an extension of this
        /// implementation).
        GetSealingWorkers(super::ClientGetSealingWorkers),
    }
}

tl_struct! {
    /// `client.updatePaymentStatus` (function): an authorised client asks for its payment
    /// status (the C++ client polls every 10–20 s).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    ClientUpdatePaymentStatus = "client.updatePaymentStatus = client.PaymentStatus" {}
}

tl_struct! {
    /// `client.paymentStatus`: the answer to [`ClientUpdatePaymentStatus`]: the newest signed
    /// charge, the tokens the proxy's books hold durably for the client, and all it knows of.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    ClientPaymentStatus = "client.paymentStatus signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long = client.PaymentStatus" {
        signed_payment: SignedPayment,
        db_tokens: i64,
        max_tokens: i64,
    }
}

tl_struct! {
    /// `client.requestRefund` (function).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    ClientRequestRefund = "client.requestRefund = client.Refund" {}
}

tl_struct! {
    /// `client.refund`: a signed refund message.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    ClientRefund = "client.refund data:bytes = client.Refund" {
        data: Vec<u8>,
    }
}

tl_struct! {
    /// `client.refundRejected`: no refund while queries are running.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    ClientRefundRejected = "client.refundRejected active_queries:long = client.Refund" {
        active_queries: i64,
    }
}

tl_enum! {
    /// `client.Refund`: the answer to [`ClientRequestRefund`].
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    ClientRefundAnswer {
        /// The signed refund.
        Refund(ClientRefund),
        /// Refused for now.
        Rejected(ClientRefundRejected),
    }
}

/// One-way messages a proxy sends a client (as `tcp.packet` data).
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyToClientMessage {
    /// An answer to a [`ClientRunQueryEx`]: any of the three `client.queryAnswer*Ex`.
    Answer(ClientQueryAnswer),
    /// What a request cost, and the client's payment status after it.
    RequestPayment(ProxyClientRequestPayment),
    /// A newer signed charge on its own (or `signedPaymentEmpty`, which says nothing).
    SignedPayment(SignedPayment),
}

impl TlBoxed for ProxyToClientMessage {
    fn write_boxed(&self, out: &mut Vec<u8>) {
        match self {
            Self::Answer(answer) => answer.write_boxed(out),
            Self::RequestPayment(payment) => payment.write_boxed(out),
            Self::SignedPayment(payment) => payment.write_boxed(out),
        }
    }

    fn read_boxed(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        let found = r.read_u32()?;
        let message = match found {
            ClientQueryAnswerEx::CONSTRUCTOR => Self::Answer(ClientQueryAnswer::Answer(
                ClientQueryAnswerEx::read_bare(r)?,
            )),
            ClientQueryAnswerErrorEx::CONSTRUCTOR => Self::Answer(ClientQueryAnswer::Error(
                ClientQueryAnswerErrorEx::read_bare(r)?,
            )),
            ClientQueryAnswerPartEx::CONSTRUCTOR => Self::Answer(ClientQueryAnswer::Part(
                ClientQueryAnswerPartEx::read_bare(r)?,
            )),
            ProxyClientRequestPayment::CONSTRUCTOR => {
                Self::RequestPayment(ProxyClientRequestPayment::read_bare(r)?)
            }
            SignedPayment::SIGNED_CONSTRUCTOR => {
                Self::SignedPayment(SignedPayment::Signed { data: r.bytes()? })
            }
            SignedPayment::EMPTY_CONSTRUCTOR => Self::SignedPayment(SignedPayment::Empty),
            found => {
                return Err(TlError::UnknownConstructor {
                    type_name: "ProxyToClientMessage",
                    found,
                })
            }
        };
        Ok(message)
    }
}

impl From<ClientQueryAnswer> for ProxyToClientMessage {
    fn from(answer: ClientQueryAnswer) -> Self {
        Self::Answer(answer)
    }
}
