//! Property tests: every message and enum survives encode → decode unchanged, and framed streams
//! survive arbitrary chunking.

use cocoon_proto::frame::{FrameDecoder, FrameEncoder};
use cocoon_proto::*;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,12}",
        2 => "[a-z]{250,258}",
        1 => "[a-zé]{300,1100}",
        1 => (65_000usize..70_000).prop_map(|len| "x".repeat(len)),
    ]
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..12),
        2 => prop::collection::vec(any::<u8>(), 250..258),
        1 => (any::<u8>(), 65_000usize..70_000).prop_map(|(byte, len)| vec![byte; len]),
    ]
}

fn seconds() -> impl Strategy<Value = f64> {
    -1e12f64..1e12f64
}

fn tokens() -> impl Strategy<Value = TokensUsed> {
    any::<[i64; 5]>().prop_map(|values| TokensUsed {
        prompt_tokens_used: values[0],
        cached_tokens_used: values[1],
        completion_tokens_used: values[2],
        reasoning_tokens_used: values[3],
        total_tokens_used: values[4],
    })
}

fn signed_payment() -> impl Strategy<Value = SignedPayment> {
    prop_oneof![
        blob().prop_map(|data| SignedPayment::Signed { data }),
        Just(SignedPayment::Empty),
    ]
}

fn connection_auth() -> impl Strategy<Value = ProxyConnectionAuth> {
    prop_oneof![
        (any::<[u8; 32]>(), any::<i64>())
            .prop_map(|(secret_hash, nonce)| ProxyConnectionAuth::Short { secret_hash, nonce }),
        any::<i64>().prop_map(|nonce| ProxyConnectionAuth::Long { nonce }),
    ]
}

fn version_range() -> impl Strategy<Value = Option<ProtoVersionRange>> {
    prop::option::of(any::<(i32, i32)>().prop_map(|(min, max)| ProtoVersionRange { min, max }))
}

fn header() -> impl Strategy<Value = HttpHeader> {
    (text(), text()).prop_map(|(name, value)| HttpHeader { name, value })
}

fn headers() -> impl Strategy<Value = Vec<HttpHeader>> {
    prop::collection::vec(header(), 0..4)
}

fn http_request() -> impl Strategy<Value = HttpRequest> {
    (text(), text(), text(), headers(), blob()).prop_map(
        |(method, url, http_version, headers, payload)| HttpRequest {
            method,
            url,
            http_version,
            headers,
            payload,
        },
    )
}

fn http_response() -> impl Strategy<Value = HttpResponse> {
    (text(), any::<i32>(), text(), headers(), blob()).prop_map(
        |(http_version, status_code, reason, headers, payload)| HttpResponse {
            http_version,
            status_code,
            reason,
            headers,
            payload,
        },
    )
}

fn worker_params() -> impl Strategy<Value = WorkerParams> {
    let limits = prop::option::of(any::<(bool, i32, i32)>().prop_map(
        |(is_test, proxy_cnt, max_active_requests)| WorkerLimits {
            is_test,
            proxy_cnt,
            max_active_requests,
        },
    ));
    (
        text(),
        text(),
        any::<i32>(),
        limits,
        version_range(),
        any::<bool>(),
    )
        .prop_map(
            |(worker_owner_address, model, coefficient, limits, proto_version, supports_cancel)| {
                WorkerParams {
                    worker_owner_address,
                    model,
                    coefficient,
                    limits,
                    proto_version,
                    supports_cancel,
                }
            },
        )
}

fn proxy_params() -> impl Strategy<Value = ProxyParams> {
    (
        any::<[u8; 32]>(),
        text(),
        text(),
        any::<Option<bool>>(),
        any::<Option<i32>>(),
    )
        .prop_map(
            |(proxy_public_key, proxy_owner_address, proxy_sc_address, is_test, proto_version)| {
                ProxyParams {
                    proxy_public_key,
                    proxy_owner_address,
                    proxy_sc_address,
                    is_test,
                    proto_version,
                }
            },
        )
}

fn client_params() -> impl Strategy<Value = ClientParams> {
    (text(), any::<Option<bool>>(), version_range()).prop_map(
        |(client_owner_address, is_test, proto_version)| ClientParams {
            client_owner_address,
            is_test,
            proto_version,
        },
    )
}

fn client_final_info() -> impl Strategy<Value = Option<ClientQueryFinalInfo>> {
    let debug =
        prop::option::of(
            (text(), text()).prop_map(|(worker_debug, proxy_debug)| FinalInfoDebug {
                worker_debug,
                proxy_debug,
            }),
        );
    let timings = prop::option::of((seconds(), seconds(), seconds(), seconds()).prop_map(
        |(proxy_start_time, proxy_end_time, worker_start_time, worker_end_time)| ClientTimings {
            proxy_start_time,
            proxy_end_time,
            worker_start_time,
            worker_end_time,
        },
    ));
    prop::option::of(
        (
            tokens(),
            debug,
            timings,
            prop::option::of(blob()),
            prop::option::of(blob()),
        )
            .prop_map(|(tokens_used, debug, timings, receipt, charge)| {
                ClientQueryFinalInfo {
                    tokens_used,
                    debug,
                    timings,
                    receipt,
                    charge,
                }
            }),
    )
}

fn proxy_final_info() -> impl Strategy<Value = Option<ProxyQueryFinalInfo>> {
    let timings = prop::option::of((seconds(), seconds()).prop_map(
        |(worker_start_time, worker_end_time)| WorkerTimings {
            worker_start_time,
            worker_end_time,
        },
    ));
    prop::option::of(
        (
            tokens(),
            prop::option::of(text()),
            timings,
            prop::option::of(blob()),
        )
            .prop_map(|(tokens_used, worker_debug, timings, receipt)| {
                ProxyQueryFinalInfo {
                    tokens_used,
                    worker_debug,
                    timings,
                    receipt,
                }
            }),
    )
}

fn client_answer() -> impl Strategy<Value = ClientQueryAnswer> {
    prop_oneof![
        (any::<[u8; 32]>(), blob(), client_final_info()).prop_map(
            |(request_id, answer, final_info)| ClientQueryAnswer::Answer(ClientQueryAnswerEx {
                request_id,
                answer,
                final_info
            })
        ),
        (any::<[u8; 32]>(), any::<i32>(), text(), client_final_info()).prop_map(
            |(request_id, error_code, error, final_info)| {
                ClientQueryAnswer::Error(ClientQueryAnswerErrorEx {
                    request_id,
                    error_code,
                    error,
                    final_info,
                })
            }
        ),
        (any::<[u8; 32]>(), blob(), client_final_info()).prop_map(
            |(request_id, answer, final_info)| ClientQueryAnswer::Part(ClientQueryAnswerPartEx {
                request_id,
                answer,
                final_info
            })
        ),
    ]
}

fn proxy_answer() -> impl Strategy<Value = ProxyQueryAnswer> {
    prop_oneof![
        (any::<[u8; 32]>(), blob(), proxy_final_info()).prop_map(
            |(request_id, answer, final_info)| ProxyQueryAnswer::Answer(ProxyQueryAnswerEx {
                request_id,
                answer,
                final_info
            })
        ),
        (any::<[u8; 32]>(), any::<i32>(), text(), proxy_final_info()).prop_map(
            |(request_id, error_code, error, final_info)| {
                ProxyQueryAnswer::Error(ProxyQueryAnswerErrorEx {
                    request_id,
                    error_code,
                    error,
                    final_info,
                })
            }
        ),
        (any::<[u8; 32]>(), blob(), proxy_final_info()).prop_map(
            |(request_id, answer, final_info)| ProxyQueryAnswer::Part(ProxyQueryAnswerPartEx {
                request_id,
                answer,
                final_info
            })
        ),
    ]
}

fn tcp_packet() -> impl Strategy<Value = TcpPacket> {
    prop_oneof![
        any::<i64>().prop_map(|id| TcpPacket::Ping(TcpPing { id })),
        any::<i64>().prop_map(|id| TcpPacket::Pong(TcpPong { id })),
        blob().prop_map(|data| TcpPacket::Packet(TcpPacketData { data })),
        (any::<i64>(), blob()).prop_map(|(id, data)| TcpPacket::Query(TcpQuery { id, data })),
        (any::<i64>(), blob())
            .prop_map(|(id, data)| TcpPacket::QueryAnswer(TcpQueryAnswer { id, data })),
        (any::<i64>(), any::<i32>(), text()).prop_map(|(id, code, message)| {
            TcpPacket::QueryError(TcpQueryError { id, code, message })
        }),
        any::<i64>().prop_map(|id| TcpPacket::Connect(TcpConnect { id })),
        any::<i64>().prop_map(|id| TcpPacket::Connected(TcpConnected { id })),
    ]
}

fn worker_types() -> impl Strategy<Value = ClientWorkerTypesV2> {
    let instance =
        any::<(i32, i32, i32)>().prop_map(|(coefficient, active_requests, max_active_requests)| {
            ClientWorkerInstanceV2 {
                coefficient,
                active_requests,
                max_active_requests,
            }
        });
    let worker_type = (text(), prop::collection::vec(instance, 0..5))
        .prop_map(|(name, workers)| ClientWorkerTypeV2 { name, workers });
    prop::collection::vec(worker_type, 0..4).prop_map(|types| ClientWorkerTypesV2 { types })
}

fn check<T: TlBoxed + PartialEq + std::fmt::Debug>(value: &T) -> Result<(), TestCaseError> {
    let bytes = value.to_bytes();
    prop_assert_eq!(bytes.len() % 4, 0);
    let decoded = T::from_bytes(&bytes).map_err(|error| TestCaseError::fail(error.to_string()))?;
    prop_assert_eq!(&decoded, value);
    prop_assert_eq!(decoded.to_bytes(), bytes);
    Ok(())
}

macro_rules! round_trip {
    ($($name:ident: $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            $(
                #[test]
                fn $name(value in $strategy) {
                    check(&value)?;
                }
            )*
        }
    };
}

round_trip! {
    tcp_packets: tcp_packet();
    tokens_used: tokens();
    http_requests: http_request();
    http_responses: http_response();
    worker_params_values: worker_params();
    proxy_params_values: proxy_params();
    client_params_values: client_params();
    signed_payments: signed_payment();
    connection_auths: connection_auth();
    client_connect: (client_params(), any::<i32>()).prop_map(|(params, min_config_version)| {
        ClientConnectToProxy { params, min_config_version }
    });
    client_connected: (proxy_params(), text(), connection_auth(), signed_payment()).prop_map(
        |(params, client_sc_address, auth, signed_payment)| ClientConnectedToProxy {
            params, client_sc_address, auth, signed_payment,
        }
    );
    authorizations: prop_oneof![
        (signed_payment(), any::<i64>(), any::<i64>()).prop_map(
            |(signed_payment, tokens_committed_to_db, max_tokens)| AuthorizationWithProxy::Success {
                signed_payment, tokens_committed_to_db, max_tokens,
            }
        ),
        (any::<i32>(), text()).prop_map(|(error_code, error)| {
            AuthorizationWithProxy::Failed { error_code, error }
        }),
    ];
    client_queries: prop_oneof![
        (client_params(), any::<i32>()).prop_map(|(params, min_config_version)| {
            ClientToProxyQuery::ConnectToProxy(ClientConnectToProxy { params, min_config_version })
        }),
        blob().prop_map(|data| {
            ClientToProxyQuery::AuthorizeShort(ClientAuthorizeWithProxyShort { data })
        }),
        Just(ClientToProxyQuery::AuthorizeLong(ClientAuthorizeWithProxyLong {})),
        Just(ClientToProxyQuery::GetWorkerTypesV2(ClientGetWorkerTypesV2 {})),
        Just(ClientToProxyQuery::UpdatePaymentStatus(ClientUpdatePaymentStatus {})),
        Just(ClientToProxyQuery::RequestRefund(ClientRequestRefund {})),
    ];
    client_payment_statuses: (signed_payment(), any::<i64>(), any::<i64>()).prop_map(
        |(signed_payment, db_tokens, max_tokens)| ClientPaymentStatus {
            signed_payment, db_tokens, max_tokens,
        }
    );
    client_refunds: prop_oneof![
        blob().prop_map(|data| ClientRefundAnswer::Refund(ClientRefund { data })),
        any::<i64>().prop_map(|active_queries| {
            ClientRefundAnswer::Rejected(ClientRefundRejected { active_queries })
        }),
    ];
    proxy_to_client_messages: prop_oneof![
        client_answer().prop_map(ProxyToClientMessage::Answer),
        (any::<[u8; 32]>(), signed_payment(), any::<[i64; 3]>()).prop_map(
            |(request_id, signed_payment, numbers)| {
                ProxyToClientMessage::RequestPayment(ProxyClientRequestPayment {
                    request_id, signed_payment,
                    db_tokens: numbers[0], max_tokens: numbers[1], request_tokens: numbers[2],
                })
            }
        ),
        signed_payment().prop_map(ProxyToClientMessage::SignedPayment),
    ];
    client_run_query: (
        (text(), blob(), any::<i32>(), any::<i32>()),
        (seconds(), any::<[u8; 32]>(), any::<i32>(), any::<Option<bool>>()),
    ).prop_map(|((model_name, query, max_coefficient, max_tokens),
                 (timeout, request_id, min_config_version, enable_debug))| ClientRunQueryEx {
        model_name, query, max_coefficient, max_tokens, timeout, request_id,
        min_config_version, enable_debug,
    });
    client_answers: client_answer();
    client_worker_types: worker_types();
    proxy_run_query: (
        blob(), signed_payment(), any::<i64>(), seconds(), any::<[u8; 32]>(),
        any::<Option<bool>>(),
    ).prop_map(|(query, signed_payment, coefficient, timeout, request_id, enable_debug)| {
        ProxyRunQueryEx { query, signed_payment, coefficient, timeout, request_id, enable_debug }
    });
    proxy_answers: proxy_answer();
    client_request_payments: (any::<[u8; 32]>(), signed_payment(), any::<[i64; 3]>()).prop_map(
        |(request_id, signed_payment, numbers)| ProxyClientRequestPayment {
            request_id, signed_payment,
            db_tokens: numbers[0], max_tokens: numbers[1], request_tokens: numbers[2],
        }
    );
    worker_request_payments: (any::<[u8; 32]>(), signed_payment(), any::<[i64; 3]>(), text())
        .prop_map(|(request_id, signed_payment, numbers, request_client_owner)| {
            ProxyWorkerRequestPayment {
                request_id, signed_payment,
                db_tokens: numbers[0], max_tokens: numbers[1], request_tokens: numbers[2],
                request_client_owner,
            }
        });
    worker_queries: prop_oneof![
        worker_params().prop_map(|params| {
            WorkerToProxyQuery::ConnectToProxy(WorkerConnectToProxy { params })
        }),
        any::<[i64; 3]>().prop_map(|numbers| {
            WorkerToProxyQuery::CompareBalance(WorkerCompareBalanceWithProxy {
                tokens_committed_to_blockchain: numbers[0],
                tokens_committed_to_db: numbers[1],
                max_tokens: numbers[2],
            })
        }),
        any::<bool>().prop_map(|is_disabled| {
            WorkerToProxyQuery::HandshakeComplete(WorkerProxyHandshakeComplete { is_disabled })
        }),
        (any::<i64>(), blob()).prop_map(|(tokens_committed_to_db, other)| {
            WorkerToProxyQuery::ExtendedCompareBalance(WorkerExtendedCompareBalanceWithProxy {
                tokens_committed_to_db, other,
            })
        }),
        Just(WorkerToProxyQuery::UpdatePaymentStatus(WorkerUpdatePaymentStatus {})),
    ];
    worker_extended_results: any::<i32>().prop_map(|error_code| {
        WorkerExtendedCompareBalanceWithProxyResult { error_code }
    });
    worker_payment_statuses: (signed_payment(), any::<i64>(), any::<i64>()).prop_map(
        |(signed_payment, db_tokens, max_tokens)| WorkerPaymentStatus {
            signed_payment, db_tokens, max_tokens,
        }
    );
    proxy_to_worker_messages: prop_oneof![
        (
            blob(), signed_payment(), any::<i64>(), seconds(), any::<[u8; 32]>(),
            any::<Option<bool>>(),
        ).prop_map(|(query, signed_payment, coefficient, timeout, request_id, enable_debug)| {
            ProxyToWorkerMessage::RunQuery(ProxyRunQueryEx {
                query, signed_payment, coefficient, timeout, request_id, enable_debug,
            })
        }),
        (any::<[u8; 32]>(), signed_payment(), any::<[i64; 3]>(), text()).prop_map(
            |(request_id, signed_payment, numbers, request_client_owner)| {
                ProxyToWorkerMessage::RequestPayment(ProxyWorkerRequestPayment {
                    request_id, signed_payment,
                    db_tokens: numbers[0], max_tokens: numbers[1], request_tokens: numbers[2],
                    request_client_owner,
                })
            }
        ),
        signed_payment().prop_map(ProxyToWorkerMessage::SignedPayment),
    ];
    worker_connected: (proxy_params(), text()).prop_map(|(params, worker_sc_address)| {
        WorkerConnectedToProxy { params, worker_sc_address }
    });
    worker_balance_results: (signed_payment(), any::<i64>(), any::<i64>(), any::<i32>()).prop_map(
        |(signed_payment, tokens_committed_to_db, max_tokens, error_code)| {
            WorkerCompareBalanceWithProxyResult {
                signed_payment, tokens_committed_to_db, max_tokens, error_code,
            }
        }
    );
    worker_handshake_completed: Just(WorkerProxyHandshakeCompleted {});
    worker_messages: prop_oneof![
        proxy_answer().prop_map(WorkerToProxyMessage::Answer),
        any::<i32>().prop_map(|disabled| {
            WorkerToProxyMessage::EnabledDisabled(WorkerEnabledDisabled { disabled })
        }),
        any::<i32>().prop_map(|new_coefficient| {
            WorkerToProxyMessage::NewCoefficient(WorkerNewCoefficient { new_coefficient })
        }),
    ];
}

/// Splits `data` at the given cut points (taken modulo its length).
fn chunks<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points
        .windows(2)
        .map(|pair| &data[pair[0]..pair[1]])
        .collect()
}

proptest! {
    #[test]
    fn frames_survive_any_chunking(
        payloads in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 4..40),
                (any::<u8>(), 1000usize..5000).prop_map(|(byte, len)| vec![byte; len]),
            ],
            1..12,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..30),
    ) {
        let mut encoder = FrameEncoder::new();
        let mut wire = Vec::new();
        for payload in &payloads {
            encoder.encode(payload, &mut wire).unwrap();
        }
        let mut decoder = FrameDecoder::new();
        let mut decoded = Vec::new();
        for chunk in chunks(&wire, &cuts) {
            decoder.push(chunk);
            while let Some(frame) = decoder.next_frame().unwrap() {
                decoded.push(frame);
            }
        }
        prop_assert_eq!(decoded, payloads);
        prop_assert_eq!(decoder.buffered(), 0);
    }
}
