//! Message bodies as cells, and the proxy-signed messages (`docs/payments.md`).
//!
//! Encoding and decoding are exact inverses; decoding never panics on any cell.

use ring::signature::{self, Ed25519KeyPair, KeyPair};
use tonlib_core::cell::{ArcCell, BagOfCells, Cell, CellBuilder, CellParser, TonCellError};
use tonlib_core::TonAddress;

use crate::ops::{op, HashKind, Params};
use crate::{big_to_coins, coins_to_big, Coins};

/// Why a body could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The cell does not hold the expected fields.
    #[error("malformed message body: {0}")]
    Malformed(String),
    /// The opcode is not one of ours.
    #[error("unknown opcode {0:#010x}")]
    UnknownOp(u32),
    /// A field does not fit its encoding.
    #[error("{0} does not fit its on-chain encoding")]
    TooLarge(&'static str),
}

impl From<TonCellError> for MessageError {
    fn from(e: TonCellError) -> MessageError {
        MessageError::Malformed(e.to_string())
    }
}

/// The proxy's Ed25519 signing key (the one its contracts store as `proxy public key`).
pub struct ProxyKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for ProxyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyKey({})", hex::encode(self.public_key()))
    }
}

impl ProxyKey {
    /// The key with this 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> ProxyKey {
        // A 32-byte seed always makes a valid Ed25519 key.
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .unwrap_or_else(|_| unreachable!("32-byte Ed25519 seed"));
        ProxyKey { pair }
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Signs `data`.
    pub fn sign(&self, data: &[u8]) -> [u8; 64] {
        let mut out = [0; 64];
        out.copy_from_slice(self.pair.sign(data).as_ref());
        out
    }
}

/// Whether `signature` is `public_key`'s signature of `data`.
pub fn verify_ed25519(public_key: &[u8; 32], data: &[u8], signature: &[u8; 64]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(data, signature)
        .is_ok()
}

/// What the proxy signs: `op query_id tokens target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPayload {
    /// One of the four signed opcodes.
    pub op: u32,
    /// Free for the sender.
    pub query_id: u64,
    /// The cumulative token count.
    pub tokens: u64,
    /// The contract the message is for.
    pub target: TonAddress,
}

impl SignedPayload {
    /// The payload cell.
    pub fn to_cell(&self) -> Result<Cell, MessageError> {
        Ok(CellBuilder::new()
            .store_u32(32, self.op)?
            .store_u64(64, self.query_id)?
            .store_u64(64, self.tokens)?
            .store_address(&self.target)?
            .build()?)
    }

    /// Signs the payload cell's hash.
    pub fn sign(
        self,
        key: &ProxyKey,
        excess_to: TonAddress,
    ) -> Result<SignedMessage, MessageError> {
        let cell = self.to_cell()?;
        let hash = cell.cell_hash();
        let signature = key.sign(hash.as_slice());
        Ok(SignedMessage {
            excess_to,
            signature,
            payload_hash: hash
                .as_slice()
                .try_into()
                .map_err(|_| MessageError::TooLarge("hash"))?,
            payload: self,
        })
    }
}

/// A proxy-signed message: `op query_id excess_to signature ^payload`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMessage {
    /// Receives the unused gas.
    pub excess_to: TonAddress,
    /// Ed25519 over the payload cell's hash.
    pub signature: [u8; 64],
    /// The payload.
    pub payload: SignedPayload,
    /// The representation hash of the payload cell as received (what the signature covers).
    pub payload_hash: [u8; 32],
}

impl SignedMessage {
    /// Whether the signature is `public_key`'s.
    pub fn verify(&self, public_key: &[u8; 32]) -> bool {
        verify_ed25519(public_key, &self.payload_hash, &self.signature)
    }
}

/// Every body of `docs/payments.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `top_up amount`.
    TopUp { query_id: u64, amount: Coins },
    /// `owner_client_increase_stake new_stake`.
    IncreaseStake { query_id: u64, new_stake: Coins },
    /// `owner_client_withdraw amount`.
    Withdraw { query_id: u64, amount: Coins },
    /// `owner_client_request_refund`.
    RequestRefund { query_id: u64 },
    /// `owner_client_register secret_hash`.
    Register {
        query_id: u64,
        secret_hash: [u8; 32],
    },
    /// `client_deploy amount stake secret_hash`.
    ClientDeploy {
        query_id: u64,
        amount: Coins,
        stake: Coins,
        secret_hash: [u8; 32],
    },
    /// `worker_deploy`.
    WorkerDeploy { query_id: u64 },
    /// `proxy_deploy stake`.
    ProxyDeploy { query_id: u64, stake: Coins },
    /// `proxy_save_state seqno hash`.
    SaveState {
        query_id: u64,
        seqno: u64,
        hash: [u8; 32],
    },
    /// `proxy_close`.
    ProxyClose { query_id: u64 },
    /// `root_set_params ^params`.
    SetParams { query_id: u64, params: Params },
    /// `root_add_hash kind hash`.
    AddHash {
        query_id: u64,
        kind: HashKind,
        hash: [u8; 32],
    },
    /// `root_remove_hash kind hash`.
    RemoveHash {
        query_id: u64,
        kind: HashKind,
        hash: [u8; 32],
    },
    /// `root_register_proxy id ^endpoint`.
    RegisterProxy {
        query_id: u64,
        id: u32,
        endpoint: String,
    },
    /// `root_unregister_proxy id`.
    UnregisterProxy { query_id: u64, id: u32 },
    /// One of the proxy-signed messages.
    Signed(SignedMessage),
    /// `payout`: a payment of exactly the message's value.
    Payout { query_id: u64 },
}

/// Longest endpoint string (one cell).
pub const MAX_ENDPOINT_LEN: usize = 127;

fn store_coins(b: &mut CellBuilder, c: Coins, what: &'static str) -> Result<(), MessageError> {
    if !c.fits_in_cell() {
        return Err(MessageError::TooLarge(what));
    }
    b.store_coins(&coins_to_big(c))?;
    Ok(())
}

fn load_coins(p: &mut CellParser<'_>) -> Result<Coins, MessageError> {
    big_to_coins(&p.load_coins()?).ok_or(MessageError::TooLarge("coins"))
}

fn load_u64_coins(p: &mut CellParser<'_>, what: &'static str) -> Result<u64, MessageError> {
    u64::try_from(load_coins(p)?.0).map_err(|_| MessageError::TooLarge(what))
}

fn load_hash(p: &mut CellParser<'_>) -> Result<[u8; 32], MessageError> {
    let mut h = [0; 32];
    p.load_slice(&mut h)?;
    Ok(h)
}

pub(crate) fn params_cell(p: &Params) -> Result<Cell, MessageError> {
    let mut b = CellBuilder::new();
    store_coins(
        &mut b,
        Coins(u128::from(p.price_per_token)),
        "price_per_token",
    )?;
    store_coins(
        &mut b,
        Coins(u128::from(p.worker_fee_per_token)),
        "worker_fee_per_token",
    )?;
    b.store_u32(32, p.prompt_multiplier)?
        .store_u32(32, p.cached_multiplier)?
        .store_u32(32, p.completion_multiplier)?
        .store_u32(32, p.reasoning_multiplier)?
        .store_u32(32, p.proxy_close_delay)?
        .store_u32(32, p.client_close_delay)?;
    store_coins(
        &mut b,
        Coins(u128::from(p.min_proxy_stake)),
        "min_proxy_stake",
    )?;
    store_coins(
        &mut b,
        Coins(u128::from(p.min_client_stake)),
        "min_client_stake",
    )?;
    Ok(b.build()?)
}

pub(crate) fn parse_params(c: &Cell) -> Result<Params, MessageError> {
    let mut p = c.parser();
    let params = Params {
        price_per_token: load_u64_coins(&mut p, "price_per_token")?,
        worker_fee_per_token: load_u64_coins(&mut p, "worker_fee_per_token")?,
        prompt_multiplier: p.load_u32(32)?,
        cached_multiplier: p.load_u32(32)?,
        completion_multiplier: p.load_u32(32)?,
        reasoning_multiplier: p.load_u32(32)?,
        proxy_close_delay: p.load_u32(32)?,
        client_close_delay: p.load_u32(32)?,
        min_proxy_stake: load_u64_coins(&mut p, "min_proxy_stake")?,
        min_client_stake: load_u64_coins(&mut p, "min_client_stake")?,
    };
    p.ensure_empty()?;
    Ok(params)
}

impl Body {
    /// The opcode.
    pub fn op(&self) -> u32 {
        match self {
            Body::TopUp { .. } => op::TOP_UP,
            Body::IncreaseStake { .. } => op::OWNER_CLIENT_INCREASE_STAKE,
            Body::Withdraw { .. } => op::OWNER_CLIENT_WITHDRAW,
            Body::RequestRefund { .. } => op::OWNER_CLIENT_REQUEST_REFUND,
            Body::Register { .. } => op::OWNER_CLIENT_REGISTER,
            Body::ClientDeploy { .. } => op::CLIENT_DEPLOY,
            Body::WorkerDeploy { .. } => op::WORKER_DEPLOY,
            Body::ProxyDeploy { .. } => op::PROXY_DEPLOY,
            Body::SaveState { .. } => op::PROXY_SAVE_STATE,
            Body::ProxyClose { .. } => op::PROXY_CLOSE,
            Body::SetParams { .. } => op::ROOT_SET_PARAMS,
            Body::AddHash { .. } => op::ROOT_ADD_HASH,
            Body::RemoveHash { .. } => op::ROOT_REMOVE_HASH,
            Body::RegisterProxy { .. } => op::ROOT_REGISTER_PROXY,
            Body::UnregisterProxy { .. } => op::ROOT_UNREGISTER_PROXY,
            Body::Signed(m) => m.payload.op,
            Body::Payout { .. } => op::PAYOUT,
        }
    }

    /// The body cell.
    pub fn to_cell(&self) -> Result<Cell, MessageError> {
        let mut b = CellBuilder::new();
        b.store_u32(32, self.op())?;
        match self {
            Body::TopUp { query_id, amount } | Body::Withdraw { query_id, amount } => {
                b.store_u64(64, *query_id)?;
                store_coins(&mut b, *amount, "amount")?;
            }
            Body::IncreaseStake {
                query_id,
                new_stake,
            } => {
                b.store_u64(64, *query_id)?;
                store_coins(&mut b, *new_stake, "new_stake")?;
            }
            Body::RequestRefund { query_id }
            | Body::WorkerDeploy { query_id }
            | Body::ProxyClose { query_id }
            | Body::Payout { query_id } => {
                b.store_u64(64, *query_id)?;
            }
            Body::Register {
                query_id,
                secret_hash,
            } => {
                b.store_u64(64, *query_id)?.store_slice(secret_hash)?;
            }
            Body::ClientDeploy {
                query_id,
                amount,
                stake,
                secret_hash,
            } => {
                b.store_u64(64, *query_id)?;
                store_coins(&mut b, *amount, "amount")?;
                store_coins(&mut b, *stake, "stake")?;
                b.store_slice(secret_hash)?;
            }
            Body::ProxyDeploy { query_id, stake } => {
                b.store_u64(64, *query_id)?;
                store_coins(&mut b, *stake, "stake")?;
            }
            Body::SaveState {
                query_id,
                seqno,
                hash,
            } => {
                b.store_u64(64, *query_id)?
                    .store_u64(64, *seqno)?
                    .store_slice(hash)?;
            }
            Body::SetParams { query_id, params } => {
                b.store_u64(64, *query_id)?
                    .store_reference(&ArcCell::new(params_cell(params)?))?;
            }
            Body::AddHash {
                query_id,
                kind,
                hash,
            }
            | Body::RemoveHash {
                query_id,
                kind,
                hash,
            } => {
                b.store_u64(64, *query_id)?
                    .store_u8(8, *kind as u8)?
                    .store_slice(hash)?;
            }
            Body::RegisterProxy {
                query_id,
                id,
                endpoint,
            } => {
                if endpoint.len() > MAX_ENDPOINT_LEN {
                    return Err(MessageError::TooLarge("endpoint"));
                }
                let text = CellBuilder::new()
                    .store_slice(endpoint.as_bytes())?
                    .build()?;
                b.store_u64(64, *query_id)?
                    .store_u32(32, *id)?
                    .store_reference(&ArcCell::new(text))?;
            }
            Body::UnregisterProxy { query_id, id } => {
                b.store_u64(64, *query_id)?.store_u32(32, *id)?;
            }
            Body::Signed(m) => {
                let payload = m.payload.to_cell()?;
                b.store_u64(64, m.payload.query_id)?
                    .store_address(&m.excess_to)?
                    .store_slice(&m.signature)?
                    .store_reference(&ArcCell::new(payload))?;
            }
        }
        Ok(b.build()?)
    }

    /// The body as a bag of cells (what `proxy.signedPayment` carries on the wire).
    pub fn to_boc(&self) -> Result<Vec<u8>, MessageError> {
        Ok(BagOfCells::from_root(self.to_cell()?).serialize(true)?)
    }

    /// Reads a body from a bag of cells with one root.
    pub fn from_boc(bytes: &[u8]) -> Result<Body, MessageError> {
        let root = BagOfCells::parse(bytes)?.single_root()?;
        Body::from_cell(&root)
    }

    /// Reads a body cell. Trailing data is an error.
    pub fn from_cell(cell: &Cell) -> Result<Body, MessageError> {
        let mut p = cell.parser();
        let opcode = p.load_u32(32)?;
        let query_id = p.load_u64(64)?;
        let body = match opcode {
            op::TOP_UP => Body::TopUp {
                query_id,
                amount: load_coins(&mut p)?,
            },
            op::OWNER_CLIENT_WITHDRAW => Body::Withdraw {
                query_id,
                amount: load_coins(&mut p)?,
            },
            op::OWNER_CLIENT_INCREASE_STAKE => Body::IncreaseStake {
                query_id,
                new_stake: load_coins(&mut p)?,
            },
            op::OWNER_CLIENT_REQUEST_REFUND => Body::RequestRefund { query_id },
            op::WORKER_DEPLOY => Body::WorkerDeploy { query_id },
            op::PROXY_CLOSE => Body::ProxyClose { query_id },
            op::PAYOUT => Body::Payout { query_id },
            op::OWNER_CLIENT_REGISTER => Body::Register {
                query_id,
                secret_hash: load_hash(&mut p)?,
            },
            op::CLIENT_DEPLOY => Body::ClientDeploy {
                query_id,
                amount: load_coins(&mut p)?,
                stake: load_coins(&mut p)?,
                secret_hash: load_hash(&mut p)?,
            },
            op::PROXY_DEPLOY => Body::ProxyDeploy {
                query_id,
                stake: load_coins(&mut p)?,
            },
            op::PROXY_SAVE_STATE => Body::SaveState {
                query_id,
                seqno: p.load_u64(64)?,
                hash: load_hash(&mut p)?,
            },
            op::ROOT_SET_PARAMS => {
                let params_ref = p.next_reference()?;
                let params = parse_params(&params_ref)?;
                Body::SetParams { query_id, params }
            }
            op::ROOT_ADD_HASH | op::ROOT_REMOVE_HASH => {
                let raw = p.load_u8(8)?;
                let kind = HashKind::from_u8(raw)
                    .ok_or_else(|| MessageError::Malformed(format!("unknown hash kind {raw}")))?;
                let hash = load_hash(&mut p)?;
                if opcode == op::ROOT_ADD_HASH {
                    Body::AddHash {
                        query_id,
                        kind,
                        hash,
                    }
                } else {
                    Body::RemoveHash {
                        query_id,
                        kind,
                        hash,
                    }
                }
            }
            op::ROOT_REGISTER_PROXY => {
                let id = p.load_u32(32)?;
                let text = p.next_reference()?;
                if text.bit_len() % 8 != 0 || !text.references().is_empty() {
                    return Err(MessageError::Malformed(
                        "endpoint is not a byte string".into(),
                    ));
                }
                let endpoint = String::from_utf8(text.data()[..text.bit_len() / 8].to_vec())
                    .map_err(|_| MessageError::Malformed("endpoint is not UTF-8".into()))?;
                Body::RegisterProxy {
                    query_id,
                    id,
                    endpoint,
                }
            }
            op::ROOT_UNREGISTER_PROXY => Body::UnregisterProxy {
                query_id,
                id: p.load_u32(32)?,
            },
            op::CHARGE_SIGNED
            | op::GRANT_REFUND_SIGNED
            | op::WORKER_PAYOUT_SIGNED
            | op::WORKER_LAST_PAYOUT_SIGNED => {
                let excess_to = p.load_address()?;
                let mut signature = [0; 64];
                p.load_slice(&mut signature)?;
                let payload_cell = p.next_reference()?;
                let mut q = payload_cell.parser();
                let payload = SignedPayload {
                    op: q.load_u32(32)?,
                    query_id: q.load_u64(64)?,
                    tokens: q.load_u64(64)?,
                    target: q.load_address()?,
                };
                q.ensure_empty()?;
                if payload.op != opcode {
                    return Err(MessageError::Malformed(format!(
                        "payload opcode {:#010x} differs from the body's {opcode:#010x}",
                        payload.op
                    )));
                }
                let hash = payload_cell.cell_hash();
                let mut payload_hash = [0; 32];
                payload_hash.copy_from_slice(hash.as_slice());
                Body::Signed(SignedMessage {
                    excess_to,
                    signature,
                    payload,
                    payload_hash,
                })
            }
            other => return Err(MessageError::UnknownOp(other)),
        };
        p.ensure_empty()?;
        if p.remaining_refs() != 0 {
            return Err(MessageError::Malformed("unexpected references".into()));
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tonlib_core::cell::BagOfCells;
    use tonlib_core::TonHash;

    fn addr(b: u8) -> TonAddress {
        TonAddress::new(0, TonHash::from([b; 32]))
    }

    #[test]
    fn signed_message_layout_and_signature() {
        let key = ProxyKey::from_seed(&[7; 32]);
        let msg = SignedPayload {
            op: op::CHARGE_SIGNED,
            query_id: 9,
            tokens: 1234,
            target: addr(1),
        }
        .sign(&key, addr(2))
        .unwrap();
        assert!(msg.verify(&key.public_key()));
        assert!(!msg.verify(&ProxyKey::from_seed(&[8; 32]).public_key()));
        let cell = Body::Signed(msg.clone()).to_cell().unwrap();
        // op + query_id + std address (267 bits) + signature.
        assert_eq!(cell.bit_len(), 32 + 64 + 267 + 512);
        assert_eq!(cell.references().len(), 1);
        let payload = &cell.references()[0];
        assert_eq!(payload.bit_len(), 32 + 64 + 64 + 267);
        assert_eq!(payload.cell_hash().as_slice(), &msg.payload_hash);
        // The signature covers the payload cell's hash, as a contract checks it.
        assert!(verify_ed25519(
            &key.public_key(),
            payload.cell_hash().as_slice(),
            &msg.signature
        ));
        let back = Body::from_cell(&cell).unwrap();
        assert_eq!(back, Body::Signed(msg));
    }

    #[test]
    fn tampered_payload_fails_verification() {
        let key = ProxyKey::from_seed(&[7; 32]);
        let msg = SignedPayload {
            op: op::CHARGE_SIGNED,
            query_id: 0,
            tokens: 10,
            target: addr(1),
        }
        .sign(&key, addr(2))
        .unwrap();
        let mut forged = msg.clone();
        forged.payload.tokens = 10_000;
        let Body::Signed(parsed) =
            Body::from_cell(&Body::Signed(forged).to_cell().unwrap()).unwrap()
        else {
            panic!("not signed");
        };
        assert!(!parsed.verify(&key.public_key()));
    }

    #[test]
    fn payload_op_must_match() {
        let key = ProxyKey::from_seed(&[7; 32]);
        let msg = SignedPayload {
            op: op::WORKER_PAYOUT_SIGNED,
            query_id: 0,
            tokens: 10,
            target: addr(1),
        }
        .sign(&key, addr(2))
        .unwrap();
        let mut cell = Body::Signed(msg).to_cell().unwrap();
        // Rewrite the outer op to charge_signed.
        let mut b = CellBuilder::new();
        let mut p = cell.parser();
        p.load_u32(32).unwrap();
        b.store_u32(32, op::CHARGE_SIGNED).unwrap();
        b.store_remaining_bits(&mut p).unwrap();
        b.store_references(cell.references()).unwrap();
        cell = b.build().unwrap();
        assert!(matches!(
            Body::from_cell(&cell),
            Err(MessageError::Malformed(_))
        ));
    }

    fn coins() -> impl Strategy<Value = Coins> {
        (0u128..(1u128 << 120)).prop_map(Coins)
    }

    fn body() -> impl Strategy<Value = Body> {
        let q = any::<u64>();
        prop_oneof![
            (q, coins()).prop_map(|(query_id, amount)| Body::TopUp { query_id, amount }),
            (q, coins()).prop_map(|(query_id, amount)| Body::Withdraw { query_id, amount }),
            (q, coins()).prop_map(|(query_id, new_stake)| Body::IncreaseStake {
                query_id,
                new_stake
            }),
            q.prop_map(|query_id| Body::RequestRefund { query_id }),
            (q, any::<[u8; 32]>()).prop_map(|(query_id, secret_hash)| Body::Register {
                query_id,
                secret_hash
            }),
            (q, coins(), coins(), any::<[u8; 32]>()).prop_map(
                |(query_id, amount, stake, secret_hash)| {
                    Body::ClientDeploy {
                        query_id,
                        amount,
                        stake,
                        secret_hash,
                    }
                }
            ),
            (q, any::<u64>(), any::<[u8; 32]>()).prop_map(|(query_id, seqno, hash)| {
                Body::SaveState {
                    query_id,
                    seqno,
                    hash,
                }
            }),
            (q, 0u8..3, any::<[u8; 32]>()).prop_map(|(query_id, k, hash)| Body::AddHash {
                query_id,
                kind: HashKind::from_u8(k).unwrap(),
                hash
            }),
            (q, any::<u32>(), "[a-z0-9.:]{0,127}").prop_map(|(query_id, id, endpoint)| {
                Body::RegisterProxy {
                    query_id,
                    id,
                    endpoint,
                }
            }),
            (q, any::<u32>(), any::<u32>()).prop_map(|(query_id, a, b)| Body::SetParams {
                query_id,
                params: Params {
                    prompt_multiplier: a,
                    client_close_delay: b,
                    ..Params::default()
                }
            }),
            (q, any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(
                |(query_id, tokens, seed, target)| {
                    let key = ProxyKey::from_seed(&seed);
                    Body::Signed(
                        SignedPayload {
                            op: op::GRANT_REFUND_SIGNED,
                            query_id,
                            tokens,
                            target: TonAddress::new(0, TonHash::from(target)),
                        }
                        .sign(&key, TonAddress::NULL)
                        .unwrap(),
                    )
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn bodies_round_trip(b in body()) {
            let cell = b.to_cell().unwrap();
            let boc = BagOfCells::from_root(cell).serialize(true).unwrap();
            let back = BagOfCells::parse(&boc).unwrap().single_root().unwrap();
            prop_assert_eq!(Body::from_cell(&back).unwrap(), b);
        }

        #[test]
        fn arbitrary_bocs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(boc) = BagOfCells::parse(&bytes) {
                if let Ok(root) = boc.single_root() {
                    let _ = Body::from_cell(&root);
                }
            }
        }

        #[test]
        fn truncated_bodies_are_errors(b in body(), cut in 1usize..64) {
            let cell = b.to_cell().unwrap();
            let bits = cell.bit_len().saturating_sub(cut);
            let mut p = cell.parser();
            let mut nb = CellBuilder::new();
            nb.store_bits(bits, &p.load_bits(bits).unwrap()).unwrap();
            nb.store_references(cell.references()).unwrap();
            let short = nb.build().unwrap();
            prop_assert!(Body::from_cell(&short).is_err());
        }
    }
}
