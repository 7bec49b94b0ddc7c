//! The reference's constructors as literals, for the golden tests: every id and normalised
//! declaration of the COCOON v2 schema we share with the reference, our own extensions, and
//! the reference's constructors we do not implement.
//!
//! Source: TelegramMessenger/cocoon at commit b75d444766212b9b17ae2bfab1268a2e2e334b6f,
//! `tl/generate/scheme/cocoon_api.tl` (SHA-256 0b99f033728ee84e394ac946590d0aec6a5d27baf6969850975548b853f49f3d)
//! and the binary schema its tl-parser compiled from it, `tl/generate/scheme/cocoon_api.tlo`
//! (SHA-256 3994ec4ffcfb07da1079d61fe3837251ee5ce58a18f9db2af7f9c0c988533723); both files
//! change together in every commit of the reference.
//!
//! Each id was found twice, without our code, and the two agreed for all 110 declarations
//! (the builtin `vector` aside):
//!
//! 1. read from the `.tlo`, where every combinator is the magic `0x5c0a1ed5`, its id, then its
//!    name as a TL string:
//!
//!    ```text
//!    data = open("cocoon_api.tlo", "rb").read(); i = 0
//!    while (i := data.find(struct.pack("<I", 0x5c0a1ed5), i) + 1) > 0:
//!        ident = struct.unpack_from("<I", data, i + 3)[0]; n = data[i + 7]
//!        print(data[i + 8:i + 8 + n].decode(), f"{ident:08x}")
//!    ```
//!
//! 2. as `zlib.crc32` of the declaration normalised the TL way: the text up to `;` on one
//!    line, an explicit `#id` dropped, brackets dropped, runs of blanks made one space:
//!
//!    ```text
//!    norm = re.sub(r"^([\w.]+)#[0-9a-f]{8}", r"\1", decl).replace("(", " ").replace(")", " ")
//!    norm = " ".join(norm.split()).replace(": ", ":"); ident = zlib.crc32(norm.encode())
//!    ```
//!
//!    except for the four constructors whose id the reference pins with `#id`
//!    ([`PINNED_BY_THE_REFERENCE`]), where the `.tlo` and the `#id` agree.
//!
//! `reference_line` is that normalised declaration (without the `#id`).

use cocoon_proto::tl::TlObject;
use cocoon_proto::*;

/// One constructor both schemas have: our id and declaration beside the reference's.
pub struct Shared {
    /// The TL name.
    pub name: &'static str,
    /// Our `CONSTRUCTOR` and `SCHEMA`.
    pub ours: (u32, &'static str),
    /// The reference's id.
    pub reference_id: u32,
    /// The reference's declaration, normalised.
    pub reference_line: &'static str,
}

/// One constructor only we have (the reference's peers never see it): its id, computed as
/// `zlib.crc32` of the declaration written here, and that declaration.
pub struct Extension {
    /// The TL name.
    pub name: &'static str,
    /// Our `CONSTRUCTOR` and `SCHEMA`.
    pub ours: (u32, &'static str),
    /// The id, as a literal.
    pub id: u32,
    /// The declaration, as a literal.
    pub line: &'static str,
}

fn ours<T: TlObject>() -> (u32, &'static str) {
    (T::CONSTRUCTOR, T::SCHEMA)
}

/// Constructors whose id the reference pins with `#id` instead of the CRC32 of the text.
pub const PINNED_BY_THE_REFERENCE: &[&str] = &[
    "worker.params",
    "proxy.params",
    "client.params",
    "client.workerInstanceV2",
];

/// Every constructor of `cocoon_api.tl` we implement.
pub fn shared() -> Vec<Shared> {
    vec![
        Shared {
            name: "tcp.ping",
            ours: ours::<TcpPing>(),
            reference_id: 0xbbe9627c,
            reference_line: "tcp.ping id:long = tcp.Packet",
        },
        Shared {
            name: "tcp.pong",
            ours: ours::<TcpPong>(),
            reference_id: 0x0bd4302c,
            reference_line: "tcp.pong id:long = tcp.Packet",
        },
        Shared {
            name: "tcp.packet",
            ours: ours::<TcpPacketData>(),
            reference_id: 0x9c17baf8,
            reference_line: "tcp.packet data:bytes = tcp.Packet",
        },
        Shared {
            name: "tcp.query",
            ours: ours::<TcpQuery>(),
            reference_id: 0x3af51908,
            reference_line: "tcp.query id:long data:bytes = tcp.Packet",
        },
        Shared {
            name: "tcp.queryAnswer",
            ours: ours::<TcpQueryAnswer>(),
            reference_id: 0xc048c311,
            reference_line: "tcp.queryAnswer id:long data:bytes = tcp.Packet",
        },
        Shared {
            name: "tcp.queryError",
            ours: ours::<TcpQueryError>(),
            reference_id: 0x4cd2f602,
            reference_line: "tcp.queryError id:long code:int message:string = tcp.Packet",
        },
        Shared {
            name: "tcp.connect",
            ours: ours::<TcpConnect>(),
            reference_id: 0xa57c4261,
            reference_line: "tcp.connect id:long = tcp.Packet",
        },
        Shared {
            name: "tcp.connected",
            ours: ours::<TcpConnected>(),
            reference_id: 0x636d41d6,
            reference_line: "tcp.connected id:long = tcp.Packet",
        },
        Shared {
            name: "tokensUsed",
            ours: ours::<TokensUsed>(),
            reference_id: 0x70c5b15c,
            reference_line: "tokensUsed prompt_tokens_used:long cached_tokens_used:long completion_tokens_used:long reasoning_tokens_used:long total_tokens_used:long = TokensUsed",
        },
        Shared {
            name: "http.header",
            ours: ours::<HttpHeader>(),
            reference_id: 0x8e9be511,
            reference_line: "http.header name:string value:string = http.Header",
        },
        Shared {
            name: "http.request",
            ours: ours::<HttpRequest>(),
            reference_id: 0x47492de5,
            reference_line: "http.request method:string url:string http_version:string headers:vector http.header payload:bytes = http.Response",
        },
        Shared {
            name: "http.response",
            ours: ours::<HttpResponse>(),
            reference_id: 0x1cd0c42b,
            reference_line: "http.response http_version:string status_code:int reason:string headers:vector http.header payload:bytes = http.Response",
        },
        Shared {
            name: "worker.params",
            ours: ours::<WorkerParams>(),
            reference_id: 0x869c73ed,
            reference_line: "worker.params flags:# worker_owner_address:string model:string coefficient:int is_test:flags.0?Bool proxy_cnt:flags.0?int max_active_requests:flags.0?int min_proto_version:flags.1?int max_proto_version:flags.1?int = worker.Params",
        },
        Shared {
            name: "proxy.params",
            ours: ours::<ProxyParams>(),
            reference_id: 0xd5c5609f,
            reference_line: "proxy.params flags:# proxy_public_key:int256 proxy_owner_address:string proxy_sc_address:string is_test:flags.0?Bool proto_version:flags.1?int = proxy.Params",
        },
        Shared {
            name: "client.params",
            ours: ours::<ClientParams>(),
            reference_id: 0x40fdca64,
            reference_line: "client.params flags:# client_owner_address:string is_test:flags.0?Bool min_proto_version:flags.1?int max_proto_version:flags.1?int = client.Params",
        },
        Shared {
            name: "proxy.signedPayment",
            ours: (SignedPayment::SIGNED_CONSTRUCTOR, SignedPayment::SIGNED_SCHEMA),
            reference_id: 0x02998182,
            reference_line: "proxy.signedPayment data:bytes = proxy.SignedPayment",
        },
        Shared {
            name: "proxy.signedPaymentEmpty",
            ours: (SignedPayment::EMPTY_CONSTRUCTOR, SignedPayment::EMPTY_SCHEMA),
            reference_id: 0xb347ce64,
            reference_line: "proxy.signedPaymentEmpty = proxy.SignedPayment",
        },
        Shared {
            name: "client.proxyConnectionAuthShort",
            ours: (ProxyConnectionAuth::SHORT_CONSTRUCTOR, ProxyConnectionAuth::SHORT_SCHEMA),
            reference_id: 0xd6ffc5af,
            reference_line: "client.proxyConnectionAuthShort secret_hash:int256 nonce:long = client.ProxyConnectionAuth",
        },
        Shared {
            name: "client.proxyConnectionAuthLong",
            ours: (ProxyConnectionAuth::LONG_CONSTRUCTOR, ProxyConnectionAuth::LONG_SCHEMA),
            reference_id: 0x417bf016,
            reference_line: "client.proxyConnectionAuthLong nonce:long = client.ProxyConnectionAuth",
        },
        Shared {
            name: "client.authorizationWithProxySuccess",
            ours: (AuthorizationWithProxy::SUCCESS_CONSTRUCTOR, AuthorizationWithProxy::SUCCESS_SCHEMA),
            reference_id: 0x75d5ac34,
            reference_line: "client.authorizationWithProxySuccess signed_payment:proxy.SignedPayment tokens_committed_to_db:long max_tokens:long = client.AuthorizationWithProxy",
        },
        Shared {
            name: "client.authorizationWithProxyFailed",
            ours: (AuthorizationWithProxy::FAILED_CONSTRUCTOR, AuthorizationWithProxy::FAILED_SCHEMA),
            reference_id: 0x60551c96,
            reference_line: "client.authorizationWithProxyFailed error_code:int error:string = client.AuthorizationWithProxy",
        },
        Shared {
            name: "client.connectToProxy",
            ours: ours::<ClientConnectToProxy>(),
            reference_id: 0xff5fa0f4,
            reference_line: "client.connectToProxy params:client.params min_config_version:int = client.ConnectedToProxy",
        },
        Shared {
            name: "client.connectedToProxy",
            ours: ours::<ClientConnectedToProxy>(),
            reference_id: 0x95317ad1,
            reference_line: "client.connectedToProxy params:proxy.params client_sc_address:string auth:client.ProxyConnectionAuth signed_payment:proxy.SignedPayment = client.ConnectedToProxy",
        },
        Shared {
            name: "client.authorizeWithProxyShort",
            ours: ours::<ClientAuthorizeWithProxyShort>(),
            reference_id: 0x6c276723,
            reference_line: "client.authorizeWithProxyShort data:bytes = client.AuthorizationWithProxy",
        },
        Shared {
            name: "client.authorizeWithProxyLong",
            ours: ours::<ClientAuthorizeWithProxyLong>(),
            reference_id: 0xd3474303,
            reference_line: "client.authorizeWithProxyLong = client.AuthorizationWithProxy",
        },
        Shared {
            name: "client.runQueryEx",
            ours: ours::<ClientRunQueryEx>(),
            reference_id: 0xf54cb74b,
            reference_line: "client.runQueryEx model_name:string query:bytes max_coefficient:int max_tokens:int timeout:double request_id:int256 min_config_version:int flags:# enable_debug:flags.0?Bool = client.QueryAnswerEx",
        },
        Shared {
            name: "client.queryFinalInfo",
            ours: ours::<ClientQueryFinalInfo>(),
            reference_id: 0x69a452f0,
            reference_line: "client.queryFinalInfo flags:# tokens_used:tokensUsed worker_debug:flags.0?string proxy_debug:flags.0?string proxy_start_time:flags.1?double proxy_end_time:flags.1?double worker_start_time:flags.1?double worker_end_time:flags.1?double = client.QueryFinalInfo",
        },
        Shared {
            name: "client.queryAnswerEx",
            ours: ours::<ClientQueryAnswerEx>(),
            reference_id: 0xcd524720,
            reference_line: "client.queryAnswerEx request_id:int256 answer:bytes flags:# final_info:flags.0?client.queryFinalInfo = client.QueryAnswerEx",
        },
        Shared {
            name: "client.queryAnswerErrorEx",
            ours: ours::<ClientQueryAnswerErrorEx>(),
            reference_id: 0x072562a8,
            reference_line: "client.queryAnswerErrorEx request_id:int256 error_code:int error:string flags:# final_info:flags.0?client.queryFinalInfo = client.QueryAnswerEx",
        },
        Shared {
            name: "client.queryAnswerPartEx",
            ours: ours::<ClientQueryAnswerPartEx>(),
            reference_id: 0xc07bfaec,
            reference_line: "client.queryAnswerPartEx request_id:int256 answer:bytes flags:# final_info:flags.0?client.queryFinalInfo = client.QueryAnswerEx",
        },
        Shared {
            name: "client.getWorkerTypesV2",
            ours: ours::<ClientGetWorkerTypesV2>(),
            reference_id: 0xb2133d72,
            reference_line: "client.getWorkerTypesV2 = client.WorkerTypesV2",
        },
        Shared {
            name: "client.workerInstanceV2",
            ours: ours::<ClientWorkerInstanceV2>(),
            reference_id: 0x3ea93d00,
            reference_line: "client.workerInstanceV2 flags:# coefficient:int active_requests:int max_active_requests:int = client.WorkerInstanceV2",
        },
        Shared {
            name: "client.workerTypeV2",
            ours: ours::<ClientWorkerTypeV2>(),
            reference_id: 0xb27d8197,
            reference_line: "client.workerTypeV2 name:string workers:vector client.workerInstanceV2 = client.WorkerTypeV2",
        },
        Shared {
            name: "client.workerTypesV2",
            ours: ours::<ClientWorkerTypesV2>(),
            reference_id: 0x0cf0dc67,
            reference_line: "client.workerTypesV2 types:vector client.workerTypeV2 = client.WorkerTypesV2",
        },
        Shared {
            name: "client.updatePaymentStatus",
            ours: ours::<ClientUpdatePaymentStatus>(),
            reference_id: 0x9ed1c697,
            reference_line: "client.updatePaymentStatus = client.PaymentStatus",
        },
        Shared {
            name: "client.paymentStatus",
            ours: ours::<ClientPaymentStatus>(),
            reference_id: 0xaa8a0ecc,
            reference_line: "client.paymentStatus signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long = client.PaymentStatus",
        },
        Shared {
            name: "client.requestRefund",
            ours: ours::<ClientRequestRefund>(),
            reference_id: 0x238d863d,
            reference_line: "client.requestRefund = client.Refund",
        },
        Shared {
            name: "client.refund",
            ours: ours::<ClientRefund>(),
            reference_id: 0x83aabead,
            reference_line: "client.refund data:bytes = client.Refund",
        },
        Shared {
            name: "client.refundRejected",
            ours: ours::<ClientRefundRejected>(),
            reference_id: 0xcf9d9957,
            reference_line: "client.refundRejected active_queries:long = client.Refund",
        },
        Shared {
            name: "proxy.runQueryEx",
            ours: ours::<ProxyRunQueryEx>(),
            reference_id: 0xc805e7e2,
            reference_line: "proxy.runQueryEx query:bytes signed_payment:proxy.SignedPayment coefficient:long timeout:double request_id:int256 flags:# enable_debug:flags.0?Bool = proxy.QueryAnswer",
        },
        Shared {
            name: "proxy.queryFinalInfo",
            ours: ours::<ProxyQueryFinalInfo>(),
            reference_id: 0xe794e6fc,
            reference_line: "proxy.queryFinalInfo flags:# tokens_used:tokensUsed worker_debug:flags.0?string worker_start_time:flags.1?double worker_end_time:flags.1?double = proxy.QueryFinalInfo",
        },
        Shared {
            name: "proxy.queryAnswerEx",
            ours: ours::<ProxyQueryAnswerEx>(),
            reference_id: 0x1ce574e8,
            reference_line: "proxy.queryAnswerEx request_id:int256 answer:bytes flags:# final_info:flags.0?proxy.queryFinalInfo = proxy.QueryAnswerEx",
        },
        Shared {
            name: "proxy.queryAnswerErrorEx",
            ours: ours::<ProxyQueryAnswerErrorEx>(),
            reference_id: 0x8f7fb0a7,
            reference_line: "proxy.queryAnswerErrorEx request_id:int256 error_code:int error:string flags:# final_info:flags.0?proxy.queryFinalInfo = proxy.QueryAnswerEx",
        },
        Shared {
            name: "proxy.queryAnswerPartEx",
            ours: ours::<ProxyQueryAnswerPartEx>(),
            reference_id: 0x6d85b50f,
            reference_line: "proxy.queryAnswerPartEx request_id:int256 answer:bytes flags:# final_info:flags.0?proxy.queryFinalInfo = proxy.QueryAnswerEx",
        },
        Shared {
            name: "proxy.clientRequestPayment",
            ours: ours::<ProxyClientRequestPayment>(),
            reference_id: 0xc6bcf127,
            reference_line: "proxy.clientRequestPayment request_id:int256 signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long request_tokens:long = proxy.WorkerRequestPayment",
        },
        Shared {
            name: "proxy.workerRequestPayment",
            ours: ours::<ProxyWorkerRequestPayment>(),
            reference_id: 0x1436c0d5,
            reference_line: "proxy.workerRequestPayment request_id:int256 signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long request_tokens:long request_client_owner:string = proxy.WorkerRequestPayment",
        },
        Shared {
            name: "worker.connectToProxy",
            ours: ours::<WorkerConnectToProxy>(),
            reference_id: 0xcc484c5d,
            reference_line: "worker.connectToProxy params:worker.params = worker.ConnectedToProxy",
        },
        Shared {
            name: "worker.connectedToProxy",
            ours: ours::<WorkerConnectedToProxy>(),
            reference_id: 0x66bc82ee,
            reference_line: "worker.connectedToProxy params:proxy.params worker_sc_address:string = worker.ConnectedToProxy",
        },
        Shared {
            name: "worker.compareBalanceWithProxy",
            ours: ours::<WorkerCompareBalanceWithProxy>(),
            reference_id: 0xdb386501,
            reference_line: "worker.compareBalanceWithProxy tokens_committed_to_blockchain:long tokens_committed_to_db:long max_tokens:long = worker.CompareBalanceWithProxyResult",
        },
        Shared {
            name: "worker.compareBalanceWithProxyResult",
            ours: ours::<WorkerCompareBalanceWithProxyResult>(),
            reference_id: 0x9054c411,
            reference_line: "worker.compareBalanceWithProxyResult signed_payment:proxy.SignedPayment tokens_committed_to_db:long max_tokens:long error_code:int = worker.CompareBalanceWithProxyResult",
        },
        Shared {
            name: "worker.extendedCompareBalanceWithProxy",
            ours: ours::<WorkerExtendedCompareBalanceWithProxy>(),
            reference_id: 0xf8dd9914,
            reference_line: "worker.extendedCompareBalanceWithProxy tokens_committed_to_db:long other:bytes = worker.ExtendedCompareBalanceWithProxyResult",
        },
        Shared {
            name: "worker.extendedCompareBalanceWithProxyResult",
            ours: ours::<WorkerExtendedCompareBalanceWithProxyResult>(),
            reference_id: 0x0c10973e,
            reference_line: "worker.extendedCompareBalanceWithProxyResult error_code:int = worker.ExtendedCompareBalanceWithProxyResult",
        },
        Shared {
            name: "worker.updatePaymentStatus",
            ours: ours::<WorkerUpdatePaymentStatus>(),
            reference_id: 0xdc70a524,
            reference_line: "worker.updatePaymentStatus = worker.PaymentStatus",
        },
        Shared {
            name: "worker.paymentStatus",
            ours: ours::<WorkerPaymentStatus>(),
            reference_id: 0xa88bd701,
            reference_line: "worker.paymentStatus signed_payment:proxy.SignedPayment db_tokens:long max_tokens:long = worker.PaymentStatus",
        },
        Shared {
            name: "worker.proxyHandshakeComplete",
            ours: ours::<WorkerProxyHandshakeComplete>(),
            reference_id: 0xf843b066,
            reference_line: "worker.proxyHandshakeComplete is_disabled:Bool = worker.HandshakeCompleted",
        },
        Shared {
            name: "worker.proxyHandshakeCompleted",
            ours: ours::<WorkerProxyHandshakeCompleted>(),
            reference_id: 0x3ad9b886,
            reference_line: "worker.proxyHandshakeCompleted = worker.HandshakeCompleted",
        },
        Shared {
            name: "worker.enabledDisabled",
            ours: ours::<WorkerEnabledDisabled>(),
            reference_id: 0xb3b71039,
            reference_line: "worker.enabledDisabled disabled:int = worker.EnabledDisabled",
        },
        Shared {
            name: "worker.newCoefficient",
            ours: ours::<WorkerNewCoefficient>(),
            reference_id: 0x6af092b0,
            reference_line: "worker.newCoefficient new_coefficient:int = worker.NewCoefficient",
        },
    ]
}

/// Our constructors the reference does not have.
pub fn extensions() -> Vec<Extension> {
    vec![
        Extension {
            name: "proxy.cancelQuery",
            ours: ours::<ProxyCancelQuery>(),
            id: 0x8cd7e668,
            line: "proxy.cancelQuery request_id:int256 = proxy.CancelQuery",
        },
        Extension {
            name: "client.getSealingWorkers",
            ours: ours::<ClientGetSealingWorkers>(),
            id: 0x997695c7,
            line: "client.getSealingWorkers model_name:string = client.SealingWorkers",
        },
        Extension {
            name: "client.sealingWorker",
            ours: ours::<ClientSealingWorker>(),
            id: 0x322d5f7c,
            line: "client.sealingWorker certificate:bytes coefficient:int = client.SealingWorker",
        },
        Extension {
            name: "client.sealingWorkers",
            ours: ours::<ClientSealingWorkers>(),
            id: 0xe6fd2f8c,
            line: "client.sealingWorkers workers:vector client.sealingWorker = client.SealingWorkers",
        },
        Extension {
            name: "client.runSealedQuery",
            ours: ours::<ClientRunSealedQuery>(),
            id: 0xb0dffc0d,
            line: "client.runSealedQuery model_name:string endpoint:string worker_key:int256 sealed:bytes prompt_estimate:long max_coefficient:int max_tokens:int timeout:double request_id:int256 min_config_version:int flags:# enable_debug:flags.0?Bool = client.QueryAnswerEx",
        },
        Extension {
            name: "proxy.runSealedQuery",
            ours: ours::<ProxyRunSealedQuery>(),
            id: 0xd6408259,
            line: "proxy.runSealedQuery endpoint:string sealed:bytes client_request_id:int256 prompt_estimate:long max_tokens:int signed_payment:proxy.SignedPayment coefficient:long timeout:double request_id:int256 flags:# enable_debug:flags.0?Bool = proxy.QueryAnswer",
        },
    ]
}

/// The reference's constructors we do not implement (runner configs, its databases, the key
/// manager, the v1 queries), with their ids: our extensions must not collide with them.
pub const REFERENCE_ONLY: &[(&str, u32)] = &[
    ("int", 0xa8509bda),
    ("long", 0x22076cba),
    ("double", 0x2210c154),
    ("string", 0xb5286e24),
    ("object", 0x29704ca0),
    ("function", 0x7acbc197),
    ("bytes", 0x184614d1),
    ("true", 0x3fedd339),
    ("boolTrue", 0x997275b5),
    ("boolFalse", 0xbc799737),
    ("int128", 0x84ccf7b7),
    ("int256", 0x7bedeb5b),
    ("ton.blockIdExt", 0xbc3f6da5),
    ("test.answer", 0x0d4fcdb6),
    ("test.query", 0x394e9143),
    ("proxyRunner.config", 0x5bf5e272),
    ("workerRunner.config", 0x870db56d),
    ("clientRunner.config", 0xaf0bd51f),
    ("keyStorageRunner.config", 0xd7874e40),
    ("rootConfig.registeredProxy", 0x9f4e446a),
    ("rootConfig.pseudo", 0x87a976cc),
    ("rootConfig.configV5", 0x5e84869b),
    ("proxyDb.clientInfo", 0x6cfeaa21),
    ("proxyDb.clientInfoV2", 0x3078c9bf),
    ("proxyDb.workerInfo", 0x2517b38f),
    ("proxyDb.pendingBlockchainSeqnoCommit", 0x525b14a9),
    ("proxyDb.configEmpty", 0x43dc40b4),
    ("proxyDb.configV4", 0xbde43703),
    ("proxyDb.configV4Disabled", 0xad2cfb4a),
    ("proxyDb.oldClient", 0x2fae7b42),
    ("proxyDb.oldWorker", 0xf04156a0),
    ("proxyDb.oldInstance", 0xa8c9e178),
    ("keyManagerDb.configEmpty", 0xd3fc2385),
    ("keyManagerDb.configV1", 0x6d2817ac),
    ("keyManagerDb.key", 0x4d0a1e17),
    ("client.queryAnswer", 0x9b943922),
    ("client.queryAnswerError", 0x6d60569a),
    ("client.queryAnswerPart", 0xb765de4c),
    ("client.queryAnswerPartError", 0xd790a022),
    ("client.workerType", 0x8210e21c),
    ("client.workerTypes", 0xf64e0e01),
    ("client.runQuery", 0xbc748f32),
    ("client.getWorkerTypes", 0x7f062bdb),
    ("proxy.queryAnswer", 0x37e5f725),
    ("proxy.queryAnswerError", 0x669d014e),
    ("proxy.queryAnswerPart", 0x72eb00ee),
    ("proxy.queryAnswerPartError", 0x940e1168),
    ("proxy.runQuery", 0x47182416),
    ("keyManager.privateKey", 0x60f4f8e7),
    ("keyManager.privateKeys", 0x0ed66ce5),
    ("keyManager.getWorkerPrivateKeys", 0x2a26eff5),
    ("keyManager.getProxyPrivateKeys", 0x47a9c2de),
];
