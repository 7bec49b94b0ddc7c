//! Sealed requests (an extension of this implementation; the reference has no such messages).
//!
//! A client that wants its request readable only by the worker that runs it asks its proxy for
//! the certificates of the workers serving a model ([`ClientGetSealingWorkers`]), verifies each
//! worker's attestation itself, seals the request to the HPKE key bound into one worker's
//! claims, and sends [`ClientRunSealedQuery`]. The proxy routes it by the clear fields (model,
//! the chosen worker, max tokens, coefficient) as [`ProxyRunSealedQuery`]; the worker's answer
//! comes back as the usual `proxy.queryAnswer*Ex` / `client.queryAnswer*Ex` messages whose
//! payload bytes are sealed records. Usage stays in the clear: the proxy bills it.
//!
//! A reference proxy answers `client.getSealingWorkers` with an unknown-query error, so a
//! client learns it cannot seal there before it sends anything sealed.

use crate::tl::{TlBoxed, TlError, TlObject, TlReader};

tl_struct! {
    /// `client.getSealingWorkers` (function): the workers of a model that accept sealed requests.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    ClientGetSealingWorkers = "client.getSealingWorkers model_name:string = client.SealingWorkers" {
        model_name: String,
    }
}

tl_struct! {
    /// `client.sealingWorker`: one worker's RA-TLS certificate (its claims carry the HPKE key)
    /// and the coefficient it asks.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    ClientSealingWorker = "client.sealingWorker certificate:bytes coefficient:int = client.SealingWorker" {
        /// DER of the worker's RA-TLS certificate, as it presented it to the proxy.
        certificate: Vec<u8>,
        coefficient: i32,
    }
}

tl_struct! {
    /// `client.sealingWorkers`: the answer to [`ClientGetSealingWorkers`], best first.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    ClientSealingWorkers = "client.sealingWorkers workers:vector client.sealingWorker = client.SealingWorkers" {
        workers: Vec<ClientSealingWorker>,
    }
}

tl_struct_flag0! {
    /// `client.runSealedQuery` (one-way, as `tcp.packet`): run a sealed request on one worker.
    #[derive(Debug, Clone, PartialEq)]
    ClientRunSealedQuery = "client.runSealedQuery model_name:string endpoint:string worker_key:int256 sealed:bytes prompt_estimate:long max_coefficient:int max_tokens:int timeout:double request_id:int256 min_config_version:int flags:# enable_debug:flags.0?Bool = client.QueryAnswerEx" {
        model_name: String,
        /// The API path, e.g. `/v1/chat/completions` (the proxy bounds embeddings differently).
        endpoint: String,
        /// The Ed25519 key of the worker's certificate the request is sealed for.
        worker_key: [u8; 32],
        /// HPKE encapsulated key and ciphertext of the request.
        sealed: Vec<u8>,
        /// The body's prompt tokens by [`crate::estimate::prompt_estimate`], declared for billing
        /// an answer cut short; the worker refuses a request that declares less than its body.
        prompt_estimate: i64,
        max_coefficient: i32,
        /// The most completion tokens the worker may produce (0: the proxy's default).
        max_tokens: i32,
        /// Seconds.
        timeout: f64,
        request_id: [u8; 32],
        min_config_version: i32,
        ;
        enable_debug: Option<bool>,
    }
}

tl_struct_flag0! {
    /// `proxy.runSealedQuery` (one-way, as `tcp.packet`): a sealed request for this worker.
    #[derive(Debug, Clone, PartialEq)]
    ProxyRunSealedQuery = "proxy.runSealedQuery endpoint:string sealed:bytes client_request_id:int256 prompt_estimate:long max_tokens:int signed_payment:proxy.SignedPayment coefficient:long timeout:double request_id:int256 flags:# enable_debug:flags.0?Bool = proxy.QueryAnswer" {
        endpoint: String,
        /// As the client sealed it.
        sealed: Vec<u8>,
        /// The client's request id, bound into the sealing: a body moved to another request
        /// does not open.
        client_request_id: [u8; 32],
        /// As the client declared it: the worker checks it against the body.
        prompt_estimate: i64,
        /// The completion tokens reserved for the request: the worker holds the body to them.
        max_tokens: i32,
        signed_payment: super::SignedPayment,
        coefficient: i64,
        /// Seconds.
        timeout: f64,
        /// The id the worker answers under (the proxy's, as for `proxy.runQueryEx`).
        request_id: [u8; 32],
        ;
        enable_debug: Option<bool>,
    }
}

/// One-way messages a client sends a proxy (as `tcp.packet` data).
#[derive(Debug, Clone, PartialEq)]
pub enum ClientToProxyPacket {
    /// `client.runQueryEx`.
    RunQuery(super::ClientRunQueryEx),
    /// `client.runSealedQuery`.
    RunSealed(ClientRunSealedQuery),
}

impl TlBoxed for ClientToProxyPacket {
    fn write_boxed(&self, out: &mut Vec<u8>) {
        match self {
            Self::RunQuery(query) => query.write_boxed(out),
            Self::RunSealed(query) => query.write_boxed(out),
        }
    }

    fn read_boxed(r: &mut TlReader<'_>) -> Result<Self, TlError> {
        match r.read_u32()? {
            super::ClientRunQueryEx::CONSTRUCTOR => {
                Ok(Self::RunQuery(super::ClientRunQueryEx::read_bare(r)?))
            }
            ClientRunSealedQuery::CONSTRUCTOR => {
                Ok(Self::RunSealed(ClientRunSealedQuery::read_bare(r)?))
            }
            found => Err(TlError::UnknownConstructor {
                type_name: "ClientToProxyPacket",
                found,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ClientRunQueryEx, SignedPayment};
    use proptest::prelude::*;

    fn sealed_query(sealed: Vec<u8>, debug: Option<bool>) -> ClientRunSealedQuery {
        ClientRunSealedQuery {
            model_name: "m".into(),
            endpoint: "/v1/chat/completions".into(),
            worker_key: [3; 32],
            sealed,
            prompt_estimate: 12,
            max_coefficient: 4000,
            max_tokens: 64,
            timeout: 30.0,
            request_id: [9; 32],
            min_config_version: 0,
            enable_debug: debug,
        }
    }

    #[test]
    fn the_packets_a_client_sends_decode_to_their_kind() {
        let plain = ClientRunQueryEx {
            model_name: "m".into(),
            query: vec![1, 2, 3],
            max_coefficient: 1000,
            max_tokens: 5,
            timeout: 1.0,
            request_id: [1; 32],
            min_config_version: 0,
            enable_debug: None,
        };
        assert_eq!(
            ClientToProxyPacket::from_bytes(&plain.to_bytes()).unwrap(),
            ClientToProxyPacket::RunQuery(plain)
        );
        let sealed = sealed_query(vec![7; 80], Some(true));
        assert_eq!(
            ClientToProxyPacket::from_bytes(&sealed.to_bytes()).unwrap(),
            ClientToProxyPacket::RunSealed(sealed)
        );
        let error = ClientToProxyPacket::from_bytes(&[0, 0, 0, 0]).unwrap_err();
        assert!(
            matches!(error, TlError::UnknownConstructor { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_worker_list_round_trips() {
        let list = ClientSealingWorkers {
            workers: vec![
                ClientSealingWorker {
                    certificate: vec![0x30; 700],
                    coefficient: 1000,
                },
                ClientSealingWorker {
                    certificate: vec![],
                    coefficient: -1,
                },
            ],
        };
        assert_eq!(
            ClientSealingWorkers::from_bytes(&list.to_bytes()).unwrap(),
            list
        );
    }

    proptest! {
        #[test]
        fn sealed_queries_round_trip_and_cut_ones_are_refused(
            sealed in proptest::collection::vec(any::<u8>(), 0..300),
            debug in proptest::option::of(any::<bool>()),
            cut in 1usize..40,
        ) {
            let query = sealed_query(sealed.clone(), debug);
            let bytes = query.to_bytes();
            prop_assert_eq!(ClientRunSealedQuery::from_bytes(&bytes).unwrap(), query);
            prop_assert!(ClientRunSealedQuery::from_bytes(&bytes[..bytes.len().saturating_sub(cut)]).is_err());
            let to_worker = ProxyRunSealedQuery {
                endpoint: "/v1/completions".into(),
                sealed,
                client_request_id: [5; 32],
                prompt_estimate: 9,
                max_tokens: 7,
                signed_payment: SignedPayment::Empty,
                coefficient: 1000,
                timeout: 2.5,
                request_id: [6; 32],
                enable_debug: debug,
            };
            let bytes = to_worker.to_bytes();
            prop_assert_eq!(ProxyRunSealedQuery::from_bytes(&bytes).unwrap(), to_worker);
        }
    }
}
