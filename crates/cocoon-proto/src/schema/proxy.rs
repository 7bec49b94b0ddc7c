//! The proxy→worker hop: requests forwarded to a worker and the worker's answers, plus the
//! payment records the proxy keeps.

use super::{flag, SignedPayment, TokensUsed};
use crate::tl::{crc32, write_f64, write_u32, TlError, TlField, TlObject, TlReader};

tl_struct_flag0! {
    /// `proxy.runQueryEx` (one-way, as `tcp.packet`): run a request on a worker.
    #[derive(Debug, Clone, PartialEq)]
    ProxyRunQueryEx = "proxy.runQueryEx query:bytes signed_payment:proxy.SignedPayment coefficient:long timeout:double request_id:int256 flags:# enable_debug:flags.0?Bool = proxy.QueryAnswer" {
        /// A boxed [`super::HttpRequest`].
        query: Vec<u8>,
        /// The worker's latest signed payment.
        signed_payment: SignedPayment,
        /// The worker's coefficient this request is billed at.
        coefficient: i64,
        /// Seconds.
        timeout: f64,
        request_id: [u8; 32],
        ;
        enable_debug: Option<bool>,
    }
}

/// Timestamps in [`ProxyQueryFinalInfo`] (its `flags.1` group), Unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkerTimings {
    /// When the worker started.
    pub worker_start_time: f64,
    /// When the worker finished.
    pub worker_end_time: f64,
}

/// `proxy.queryFinalInfo`: usage and diagnostics attached to a worker's last answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyQueryFinalInfo {
    /// Token usage the worker reports.
    pub tokens_used: TokensUsed,
    /// Worker debug text (`flags.0`).
    pub worker_debug: Option<String>,
    /// Timestamps (`flags.1`).
    pub timings: Option<WorkerTimings>,
    /// The worker's signed receipt of a sealed request (`flags.2`, this implementation's
    /// extension: sent only for `proxy.runSealedQuery`, which reference proxies never send).
    pub receipt: Option<Vec<u8>>,
}

impl TlObject for ProxyQueryFinalInfo {
    // The constructor is the reference's: the receipt is an extension behind a flag it never
    // sets, so the schema it hashes stays the reference's text.
    const CONSTRUCTOR: u32 = crc32(Self::SCHEMA.as_bytes());
    const SCHEMA: &'static str = "proxy.queryFinalInfo flags:# tokens_used:tokensUsed worker_debug:flags.0?string worker_start_time:flags.1?double worker_end_time:flags.1?double = proxy.QueryFinalInfo";

    fn write_bare(&self, out: &mut Vec<u8>) {
        let flags = u32::from(self.worker_debug.is_some())
            | u32::from(self.timings.is_some()) << 1
            | u32::from(self.receipt.is_some()) << 2;
        write_u32(out, flags);
        self.tokens_used.write_bare(out);
        if let Some(debug) = &self.worker_debug {
            debug.write_field(out);
        }
        if let Some(timings) = &self.timings {
            write_f64(out, timings.worker_start_time);
            write_f64(out, timings.worker_end_time);
        }
        if let Some(receipt) = &self.receipt {
            receipt.write_field(out);
        }
    }

    fn read_bare(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        let flags = r.read_u32()?;
        let tokens_used = TokensUsed::read_bare(r)?;
        let worker_debug = if flag(flags, 0) {
            Some(r.string()?)
        } else {
            None
        };
        let timings = if flag(flags, 1) {
            Some(WorkerTimings {
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
        Ok(Self {
            tokens_used,
            worker_debug,
            timings,
            receipt,
        })
    }
}

tl_struct_flag0! {
    /// `proxy.queryAnswerEx`: the worker's first answer (a boxed [`super::HttpResponse`]).
    #[derive(Debug, Clone, PartialEq)]
    ProxyQueryAnswerEx = "proxy.queryAnswerEx request_id:int256 answer:bytes flags:# final_info:flags.0?proxy.queryFinalInfo = proxy.QueryAnswerEx" {
        request_id: [u8; 32],
        answer: Vec<u8>,
        ;
        /// Present on the last answer of the request.
        final_info: Option<ProxyQueryFinalInfo>,
    }
}

tl_struct_flag0! {
    /// `proxy.queryAnswerErrorEx`: the request failed on the worker.
    #[derive(Debug, Clone, PartialEq)]
    ProxyQueryAnswerErrorEx = "proxy.queryAnswerErrorEx request_id:int256 error_code:int error:string flags:# final_info:flags.0?proxy.queryFinalInfo = proxy.QueryAnswerEx" {
        request_id: [u8; 32],
        error_code: i32,
        error: String,
        ;
        /// Present on the last answer of the request.
        final_info: Option<ProxyQueryFinalInfo>,
    }
}

tl_struct_flag0! {
    /// `proxy.queryAnswerPartEx`: a further chunk of the worker's answer body.
    #[derive(Debug, Clone, PartialEq)]
    ProxyQueryAnswerPartEx = "proxy.queryAnswerPartEx request_id:int256 answer:bytes flags:# final_info:flags.0?proxy.queryFinalInfo = proxy.QueryAnswerEx" {
        request_id: [u8; 32],
        answer: Vec<u8>,
        ;
        /// Present on the last answer of the request.
        final_info: Option<ProxyQueryFinalInfo>,
    }
}

tl_enum! {
    /// `proxy.QueryAnswerEx`: what a worker sends the proxy about a request.
    #[derive(Debug, Clone, PartialEq)]
    ProxyQueryAnswer {
        /// First answer.
        Answer(ProxyQueryAnswerEx),
        /// Failure.
        Error(ProxyQueryAnswerErrorEx),
        /// Further chunk.
        Part(ProxyQueryAnswerPartEx),
    }
}

impl ProxyQueryAnswer {
    /// The request this answer belongs to.
    pub fn request_id(&self) -> &[u8; 32] {
        match self {
            Self::Answer(answer) => &answer.request_id,
            Self::Error(error) => &error.request_id,
            Self::Part(part) => &part.request_id,
        }
    }

    /// Final usage and diagnostics; present iff this is the last answer of the request.
    pub fn final_info(&self) -> Option<&ProxyQueryFinalInfo> {
        match self {
            Self::Answer(answer) => answer.final_info.as_ref(),
            Self::Error(error) => error.final_info.as_ref(),
            Self::Part(part) => part.final_info.as_ref(),
        }
    }
}

tl_struct! {
    /// `proxy.cancelQuery` (one-way, as `tcp.packet`; an extension of this implementation, sent
    /// only to workers whose `worker.params` set [`super::WORKER_PARAMS_CANCEL_FLAG`]): the
    /// client of `request_id` is gone or out of time, so the worker stops generating and ends
    /// the request (its last message frees the slot; what it bills was settled at the cut).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    ProxyCancelQuery = "proxy.cancelQuery request_id:int256 = proxy.CancelQuery" {
        request_id: [u8; 32],
    }
}

tl_struct! {
    /// `proxy.clientRequestPayment`: the proxy's record of what a client request cost. (The
    /// schema declares its result type as `proxy.WorkerRequestPayment`; the id depends on it.)
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    ProxyClientRequestPayment = "proxy.clientRequestPayment request_id:int256 signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long request_tokens:long = proxy.WorkerRequestPayment" {
        request_id: [u8; 32],
        signed_payment: SignedPayment,
        db_tokens: i64,
        max_tokens: i64,
        request_tokens: i64,
    }
}

tl_struct! {
    /// `proxy.workerRequestPayment`: the proxy's record of what a worker earned for a request.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    ProxyWorkerRequestPayment = "proxy.workerRequestPayment request_id:int256 signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long request_tokens:long request_client_owner:string = proxy.WorkerRequestPayment" {
        request_id: [u8; 32],
        signed_payment: SignedPayment,
        db_tokens: i64,
        max_tokens: i64,
        request_tokens: i64,
        request_client_owner: String,
    }
}
