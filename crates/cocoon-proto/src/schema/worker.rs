//! The worker→proxy hop: connection, balance reconciliation, and what a worker may send at any
//! time.

use super::{
    ProxyCancelQuery, ProxyParams, ProxyQueryAnswer, ProxyQueryAnswerErrorEx, ProxyQueryAnswerEx,
    ProxyQueryAnswerPartEx, ProxyRunQueryEx, ProxyWorkerRequestPayment, SignedPayment,
    WorkerParams,
};
use crate::tl::{TlBoxed, TlError, TlObject, TlReader};

tl_struct! {
    /// `worker.connectToProxy` (function): the worker's first query on a connection.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    WorkerConnectToProxy = "worker.connectToProxy params:worker.params = worker.ConnectedToProxy" {
        params: WorkerParams,
    }
}

tl_struct! {
    /// `worker.connectedToProxy`: the answer to [`WorkerConnectToProxy`].
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    WorkerConnectedToProxy = "worker.connectedToProxy params:proxy.params worker_sc_address:string = worker.ConnectedToProxy" {
        params: ProxyParams,
        worker_sc_address: String,
    }
}

tl_struct! {
    /// `worker.compareBalanceWithProxy` (function): reconcile the worker's view of its earnings.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    WorkerCompareBalanceWithProxy = "worker.compareBalanceWithProxy tokens_committed_to_blockchain:long tokens_committed_to_db:long max_tokens:long = worker.CompareBalanceWithProxyResult" {
        tokens_committed_to_blockchain: i64,
        tokens_committed_to_db: i64,
        max_tokens: i64,
    }
}

tl_struct! {
    /// `worker.compareBalanceWithProxyResult`: the answer to [`WorkerCompareBalanceWithProxy`].
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    WorkerCompareBalanceWithProxyResult = "worker.compareBalanceWithProxyResult signed_payment:proxy.SignedPayment tokens_committed_to_db:long max_tokens:long error_code:int = worker.CompareBalanceWithProxyResult" {
        signed_payment: SignedPayment,
        tokens_committed_to_db: i64,
        max_tokens: i64,
        error_code: i32,
    }
}

tl_struct! {
    /// `worker.extendedCompareBalanceWithProxy` (function): sent after a
    /// [`WorkerCompareBalanceWithProxyResult`] with `error_code` 1 (the worker knows of more
    /// earned tokens than the proxy), carrying what the worker can show of the difference.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    WorkerExtendedCompareBalanceWithProxy = "worker.extendedCompareBalanceWithProxy tokens_committed_to_db:long other:bytes = worker.ExtendedCompareBalanceWithProxyResult" {
        tokens_committed_to_db: i64,
        other: Vec<u8>,
    }
}

tl_struct! {
    /// `worker.extendedCompareBalanceWithProxyResult`: 0 lets the worker finish its handshake;
    /// anything else makes it drop the connection.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    WorkerExtendedCompareBalanceWithProxyResult = "worker.extendedCompareBalanceWithProxyResult error_code:int = worker.ExtendedCompareBalanceWithProxyResult" {
        error_code: i32,
    }
}

tl_struct! {
    /// `worker.updatePaymentStatus` (function): a registered worker asks for its payment status.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    WorkerUpdatePaymentStatus = "worker.updatePaymentStatus = worker.PaymentStatus" {}
}

tl_struct! {
    /// `worker.paymentStatus`: the answer to [`WorkerUpdatePaymentStatus`]: the newest signed
    /// payout, the tokens the proxy's books hold durably for the worker, and all it knows of.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    WorkerPaymentStatus = "worker.paymentStatus signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long = worker.PaymentStatus" {
        signed_payment: SignedPayment,
        db_tokens: i64,
        max_tokens: i64,
    }
}

tl_struct! {
    /// `worker.proxyHandshakeComplete` (function): the worker is ready for requests.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    WorkerProxyHandshakeComplete = "worker.proxyHandshakeComplete is_disabled:Bool = worker.HandshakeCompleted" {
        is_disabled: bool,
    }
}

tl_struct! {
    /// `worker.proxyHandshakeCompleted`: the answer to [`WorkerProxyHandshakeComplete`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    WorkerProxyHandshakeCompleted = "worker.proxyHandshakeCompleted = worker.HandshakeCompleted" {}
}

tl_struct! {
    /// `worker.enabledDisabled` (one-way): the worker stops or resumes taking requests.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    WorkerEnabledDisabled = "worker.enabledDisabled disabled:int = worker.EnabledDisabled" {
        /// Non-zero when disabled.
        disabled: i32,
    }
}

tl_struct! {
    /// `worker.newCoefficient` (one-way): the worker changes its price coefficient.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    WorkerNewCoefficient = "worker.newCoefficient new_coefficient:int = worker.NewCoefficient" {
        new_coefficient: i32,
    }
}

tl_enum! {
    /// Queries a worker sends a proxy (as `tcp.query` data).
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    WorkerToProxyQuery {
        /// Open the session.
        ConnectToProxy(WorkerConnectToProxy),
        /// Reconcile balances.
        CompareBalance(WorkerCompareBalanceWithProxy),
        /// Reconcile balances when the worker knows more than the proxy.
        ExtendedCompareBalance(WorkerExtendedCompareBalanceWithProxy),
        /// Ready for requests.
        HandshakeComplete(WorkerProxyHandshakeComplete),
        /// Payment status, any time after the handshake.
        UpdatePaymentStatus(WorkerUpdatePaymentStatus),
    }
}

/// One-way messages a proxy sends a worker (as `tcp.packet` data).
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyToWorkerMessage {
    /// A request to serve.
    RunQuery(ProxyRunQueryEx),
    /// What the worker earned with a request, and its payment status after it.
    RequestPayment(ProxyWorkerRequestPayment),
    /// A newer signed payout on its own (or `signedPaymentEmpty`, which says nothing).
    SignedPayment(SignedPayment),
    /// Stop a running request (see [`ProxyCancelQuery`]).
    Cancel(ProxyCancelQuery),
    /// A request sealed to this worker's key (an extension of this implementation).
    RunSealed(super::ProxyRunSealedQuery),
}

impl TlBoxed for ProxyToWorkerMessage {
    fn write_boxed(&self, out: &mut Vec<u8>) {
        match self {
            Self::RunQuery(query) => query.write_boxed(out),
            Self::RequestPayment(payment) => payment.write_boxed(out),
            Self::SignedPayment(payment) => payment.write_boxed(out),
            Self::Cancel(cancel) => cancel.write_boxed(out),
            Self::RunSealed(query) => query.write_boxed(out),
        }
    }

    fn read_boxed(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        let found = r.read_u32()?;
        let message = match found {
            ProxyRunQueryEx::CONSTRUCTOR => Self::RunQuery(ProxyRunQueryEx::read_bare(r)?),
            ProxyWorkerRequestPayment::CONSTRUCTOR => {
                Self::RequestPayment(ProxyWorkerRequestPayment::read_bare(r)?)
            }
            SignedPayment::SIGNED_CONSTRUCTOR => {
                Self::SignedPayment(SignedPayment::Signed { data: r.bytes()? })
            }
            SignedPayment::EMPTY_CONSTRUCTOR => Self::SignedPayment(SignedPayment::Empty),
            ProxyCancelQuery::CONSTRUCTOR => Self::Cancel(ProxyCancelQuery::read_bare(r)?),
            super::ProxyRunSealedQuery::CONSTRUCTOR => {
                Self::RunSealed(super::ProxyRunSealedQuery::read_bare(r)?)
            }
            found => {
                return Err(TlError::UnknownConstructor {
                    type_name: "ProxyToWorkerMessage",
                    found,
                })
            }
        };
        Ok(message)
    }
}

impl From<ProxyRunQueryEx> for ProxyToWorkerMessage {
    fn from(query: ProxyRunQueryEx) -> Self {
        Self::RunQuery(query)
    }
}

impl From<ProxyWorkerRequestPayment> for ProxyToWorkerMessage {
    fn from(payment: ProxyWorkerRequestPayment) -> Self {
        Self::RequestPayment(payment)
    }
}

/// One-way messages a worker sends a proxy (as `tcp.packet` data).
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerToProxyMessage {
    /// An answer to a [`super::ProxyRunQueryEx`]: any of the three `proxy.queryAnswer*Ex`.
    Answer(ProxyQueryAnswer),
    /// The worker stops or resumes taking requests.
    EnabledDisabled(WorkerEnabledDisabled),
    /// The worker changes its price coefficient.
    NewCoefficient(WorkerNewCoefficient),
}

impl TlBoxed for WorkerToProxyMessage {
    fn write_boxed(&self, out: &mut Vec<u8>) {
        match self {
            Self::Answer(answer) => answer.write_boxed(out),
            Self::EnabledDisabled(message) => message.write_boxed(out),
            Self::NewCoefficient(message) => message.write_boxed(out),
        }
    }

    fn read_boxed(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        let found = r.read_u32()?;
        let message = match found {
            ProxyQueryAnswerEx::CONSTRUCTOR => {
                Self::Answer(ProxyQueryAnswer::Answer(ProxyQueryAnswerEx::read_bare(r)?))
            }
            ProxyQueryAnswerErrorEx::CONSTRUCTOR => Self::Answer(ProxyQueryAnswer::Error(
                ProxyQueryAnswerErrorEx::read_bare(r)?,
            )),
            ProxyQueryAnswerPartEx::CONSTRUCTOR => Self::Answer(ProxyQueryAnswer::Part(
                ProxyQueryAnswerPartEx::read_bare(r)?,
            )),
            WorkerEnabledDisabled::CONSTRUCTOR => {
                Self::EnabledDisabled(WorkerEnabledDisabled::read_bare(r)?)
            }
            WorkerNewCoefficient::CONSTRUCTOR => {
                Self::NewCoefficient(WorkerNewCoefficient::read_bare(r)?)
            }
            found => {
                return Err(TlError::UnknownConstructor {
                    type_name: "WorkerToProxyMessage",
                    found,
                })
            }
        };
        Ok(message)
    }
}

impl From<ProxyQueryAnswer> for WorkerToProxyMessage {
    fn from(answer: ProxyQueryAnswer) -> Self {
        Self::Answer(answer)
    }
}

impl From<WorkerEnabledDisabled> for WorkerToProxyMessage {
    fn from(message: WorkerEnabledDisabled) -> Self {
        Self::EnabledDisabled(message)
    }
}

impl From<WorkerNewCoefficient> for WorkerToProxyMessage {
    fn from(message: WorkerNewCoefficient) -> Self {
        Self::NewCoefficient(message)
    }
}
