//! The conformance vectors of `contracts/vectors/` (format: `docs/payments.md`), run against
//! the native rules. The sandbox tests run the same files against the Tolk contracts.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tonlib_core::TonAddress;

use crate::messages::{Body, ProxyKey, SignedPayload};
use crate::ops::{op, ExitCode, HashKind, Params};
use crate::rules::{Init, Message, Rejected, World};
use crate::{Coins, Wallet};

/// The clock at the start of every vector.
pub const START_TIME: u32 = 1_700_000_000;

/// Why a vector failed.
#[derive(Debug, thiserror::Error)]
#[error("{vector}: step {step}: {why}")]
pub struct VectorFailure {
    /// Vector name.
    pub vector: String,
    /// Index of the failing step.
    pub step: usize,
    /// What went wrong.
    pub why: String,
}

/// Party `name`'s key seed: SHA-256 of the name.
pub fn party_seed(name: &str) -> [u8; 32] {
    Sha256::digest(name.as_bytes()).into()
}

struct Runner {
    world: World,
    wallets: HashMap<String, Wallet>,
    proxy: TonAddress,
}

impl Runner {
    fn wallet(&mut self, name: &str) -> TonAddress {
        if let Some(w) = self.wallets.get(name) {
            return w.address().clone();
        }
        let w = Wallet::from_seed(&party_seed(name));
        let addr = w.address().clone();
        self.world.mint(&addr, Coins::ton(1_000_000));
        self.wallets.insert(name.to_string(), w);
        addr
    }

    fn contract(&mut self, spec: &str) -> Result<TonAddress, String> {
        let root = self.world.root_address.clone();
        match spec.split_once(':') {
            Some(("client", name)) => {
                let owner = self.wallet(name);
                Ok(Init::Client {
                    proxy: self.proxy.clone(),
                    owner,
                }
                .address(&root))
            }
            Some(("worker", name)) => {
                let owner = self.wallet(name);
                Ok(Init::Worker {
                    proxy: self.proxy.clone(),
                    owner,
                }
                .address(&root))
            }
            _ if spec == "proxy" => Ok(self.proxy.clone()),
            _ if spec == "root" => Ok(root),
            _ => Err(format!("unknown contract {spec:?}")),
        }
    }
}

fn field<'a>(step: &'a Map<String, Value>, name: &str) -> Result<&'a Value, String> {
    step.get(name)
        .ok_or_else(|| format!("missing field {name:?}"))
}

fn uint(step: &Map<String, Value>, name: &str) -> Result<u128, String> {
    field(step, name)?
        .as_u64()
        .map(u128::from)
        .ok_or_else(|| format!("{name:?} is not an unsigned integer"))
}

fn string<'a>(step: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    field(step, name)?
        .as_str()
        .ok_or_else(|| format!("{name:?} is not a string"))
}

fn hash32(step: &Map<String, Value>, name: &str) -> Result<[u8; 32], String> {
    let v = hex::decode(string(step, name)?).map_err(|e| format!("{name:?}: {e}"))?;
    v.try_into()
        .map_err(|_| format!("{name:?} is not 32 bytes"))
}

fn params(v: &Value) -> Result<Params, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("params: {e}"))
}

/// Runs one vector file.
pub fn run_file(path: &Path) -> Result<String, VectorFailure> {
    let fail = |step, why: String| VectorFailure {
        vector: path.display().to_string(),
        step,
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(0, e.to_string()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| fail(0, e.to_string()))?;
    let name = doc["name"].as_str().unwrap_or("?").to_string();
    run(&doc).map_err(|(step, why)| VectorFailure {
        vector: name.clone(),
        step,
        why,
    })?;
    Ok(name)
}

/// Runs a parsed vector; on failure returns the step index and why.
pub fn run(doc: &Value) -> Result<(), (usize, String)> {
    let params = params(&doc["params"]).map_err(|e| (0, e))?;
    let owner = Wallet::from_seed(&party_seed("owner"));
    let proxy_wallet = Wallet::from_seed(&party_seed("proxy"));
    let mut world = World::new(owner.address().clone(), params, START_TIME);
    world.mint(owner.address(), Coins::ton(1_000_000));
    world.mint(proxy_wallet.address(), Coins::ton(1_000_000));
    let proxy = Init::Proxy {
        owner: proxy_wallet.address().clone(),
        public_key: proxy_wallet.key().public_key(),
    }
    .address(&world.root_address);
    let mut r = Runner {
        world,
        wallets: HashMap::from([
            ("owner".to_string(), owner),
            ("proxy".to_string(), proxy_wallet),
        ]),
        proxy,
    };
    let steps = doc["steps"].as_array().ok_or((0, "no steps".to_string()))?;
    for (i, step) in steps.iter().enumerate() {
        let step = step
            .as_object()
            .ok_or((i, "step is not an object".to_string()))?;
        run_step(&mut r, step).map_err(|e| (i, e))?;
    }
    Ok(())
}

fn run_step(r: &mut Runner, step: &Map<String, Value>) -> Result<(), String> {
    if let Some(secs) = step.get("advance_time") {
        let secs = secs.as_u64().ok_or("advance_time is not a number")?;
        r.world.now += u32::try_from(secs).map_err(|_| "advance_time too large")?;
        return Ok(());
    }
    if let Some(expect) = step.get("expect") {
        return check(r, expect.as_object().ok_or("expect is not an object")?);
    }
    let op_name = string(step, "op")?;
    let party = |key: &str| step.get(key).and_then(Value::as_str).map(str::to_string);
    let (natural_from, to, body, value, init): (String, TonAddress, Body, u128, Option<Init>) =
        match op_name {
            "root_set_params" => {
                let p = params(field(step, "params")?)?;
                (
                    "owner".into(),
                    r.world.root_address.clone(),
                    Body::SetParams {
                        query_id: 0,
                        params: p,
                    },
                    0,
                    None,
                )
            }
            "root_add_hash" | "root_remove_hash" => {
                let kind = u8::try_from(uint(step, "kind")?)
                    .ok()
                    .and_then(HashKind::from_u8)
                    .ok_or("bad kind")?;
                let hash = hash32(step, "hash")?;
                let body = if op_name == "root_add_hash" {
                    Body::AddHash {
                        query_id: 0,
                        kind,
                        hash,
                    }
                } else {
                    Body::RemoveHash {
                        query_id: 0,
                        kind,
                        hash,
                    }
                };
                ("owner".into(), r.world.root_address.clone(), body, 0, None)
            }
            "root_register_proxy" => {
                let id = u32::try_from(uint(step, "id")?).map_err(|_| "id too large")?;
                let endpoint = string(step, "endpoint")?.to_string();
                (
                    "owner".into(),
                    r.world.root_address.clone(),
                    Body::RegisterProxy {
                        query_id: 0,
                        id,
                        endpoint,
                    },
                    0,
                    None,
                )
            }
            "root_unregister_proxy" => {
                let id = u32::try_from(uint(step, "id")?).map_err(|_| "id too large")?;
                (
                    "owner".into(),
                    r.world.root_address.clone(),
                    Body::UnregisterProxy { query_id: 0, id },
                    0,
                    None,
                )
            }
            "proxy_deploy" => {
                let stake = uint(step, "stake")?;
                let pw = &r.wallets["proxy"];
                let init = Init::Proxy {
                    owner: pw.address().clone(),
                    public_key: pw.key().public_key(),
                };
                (
                    "proxy".into(),
                    r.proxy.clone(),
                    Body::ProxyDeploy {
                        query_id: 0,
                        stake: Coins(stake),
                    },
                    stake,
                    Some(init),
                )
            }
            "proxy_save_state" => {
                let seqno = u64::try_from(uint(step, "seqno")?).map_err(|_| "seqno too large")?;
                let hash = hash32(step, "hash")?;
                (
                    "proxy".into(),
                    r.proxy.clone(),
                    Body::SaveState {
                        query_id: 0,
                        seqno,
                        hash,
                    },
                    0,
                    None,
                )
            }
            "proxy_close" => (
                "proxy".into(),
                r.proxy.clone(),
                Body::ProxyClose { query_id: 0 },
                0,
                None,
            ),
            "client_deploy" => {
                let client = string(step, "client")?.to_string();
                let (amount, stake) = (uint(step, "amount")?, uint(step, "stake")?);
                let owner = r.wallet(&client);
                let init = Init::Client {
                    proxy: r.proxy.clone(),
                    owner,
                };
                let to = init.address(&r.world.root_address);
                let body = Body::ClientDeploy {
                    query_id: 0,
                    amount: Coins(amount),
                    stake: Coins(stake),
                    secret_hash: [0; 32],
                };
                (client, to, body, amount, Some(init))
            }
            "top_up"
            | "owner_client_increase_stake"
            | "owner_client_withdraw"
            | "owner_client_request_refund" => {
                let client = string(step, "client")?.to_string();
                let to = r.contract(&format!("client:{client}"))?;
                let (body, value) = match op_name {
                    "top_up" => {
                        let a = uint(step, "amount")?;
                        (
                            Body::TopUp {
                                query_id: 0,
                                amount: Coins(a),
                            },
                            a,
                        )
                    }
                    "owner_client_increase_stake" => (
                        Body::IncreaseStake {
                            query_id: 0,
                            new_stake: Coins(uint(step, "new_stake")?),
                        },
                        0,
                    ),
                    "owner_client_withdraw" => (
                        Body::Withdraw {
                            query_id: 0,
                            amount: Coins(uint(step, "amount")?),
                        },
                        0,
                    ),
                    _ => (Body::RequestRefund { query_id: 0 }, 0),
                };
                (client, to, body, value, None)
            }
            "worker_deploy" => {
                let worker = string(step, "worker")?.to_string();
                let owner = r.wallet(&worker);
                let init = Init::Worker {
                    proxy: r.proxy.clone(),
                    owner,
                };
                let to = init.address(&r.world.root_address);
                (
                    worker,
                    to,
                    Body::WorkerDeploy { query_id: 0 },
                    0,
                    Some(init),
                )
            }
            "charge_signed"
            | "grant_refund_signed"
            | "worker_payout_signed"
            | "worker_last_payout_signed" => {
                let (kind, opcode) = match op_name {
                    "charge_signed" => ("client", op::CHARGE_SIGNED),
                    "grant_refund_signed" => ("client", op::GRANT_REFUND_SIGNED),
                    "worker_payout_signed" => ("worker", op::WORKER_PAYOUT_SIGNED),
                    _ => ("worker", op::WORKER_LAST_PAYOUT_SIGNED),
                };
                let who = string(step, kind)?.to_string();
                let to = r.contract(&format!("{kind}:{who}"))?;
                let target = match party("target") {
                    Some(t) => r.contract(&t)?,
                    None => to.clone(),
                };
                let signer = party("signer").unwrap_or_else(|| "proxy".into());
                r.wallet(&signer);
                let key = ProxyKey::from_seed(&party_seed(&signer));
                let tokens =
                    u64::try_from(uint(step, "tokens")?).map_err(|_| "tokens too large")?;
                let msg = SignedPayload {
                    op: opcode,
                    query_id: 0,
                    tokens,
                    target,
                }
                .sign(&key, TonAddress::NULL)
                .map_err(|e| e.to_string())?;
                ("proxy".into(), to, Body::Signed(msg), 0, None)
            }
            other => return Err(format!("unknown op {other:?}")),
        };
    let from_name = party("from").unwrap_or(natural_from);
    let from = r.wallet(&from_name);
    let msg = Message {
        from,
        to,
        value: Coins(value),
        body: body.to_cell().map_err(|e| e.to_string())?,
        init,
    };
    let before = r.world.clone();
    let result = r.world.execute(&msg);
    match (step.get("error").and_then(Value::as_str), result) {
        (None, Ok(_)) => Ok(()),
        (None, Err(e)) => Err(format!("{op_name} failed: {e}")),
        (Some(want), Ok(_)) => Err(format!("{op_name} succeeded, expected {want}")),
        (Some(want), Err(Rejected::Exit(code))) => {
            if ExitCode::from_name(want).is_none() {
                return Err(format!("unknown error name {want:?}"));
            }
            if code.name() != want {
                return Err(format!(
                    "{op_name} failed with {}, expected {want}",
                    code.name()
                ));
            }
            if r.world != before {
                return Err(format!("{op_name} was refused but changed the state"));
            }
            Ok(())
        }
        (Some(want), Err(e)) => Err(format!("{op_name}: expected {want}, got {e}")),
    }
}

fn check(r: &mut Runner, expect: &Map<String, Value>) -> Result<(), String> {
    for (what, want) in expect {
        let actual: Value = if let Some(name) = what.strip_prefix("paid:") {
            let addr = r.wallet(name);
            Value::from(r.world.paid.get(&addr).copied().unwrap_or(0) as u64)
        } else {
            let addr = r.contract(what)?;
            let w = &r.world;
            let obj = if what.starts_with("client:") {
                let c = w
                    .clients
                    .get(&addr)
                    .ok_or_else(|| format!("{what} not deployed"))?;
                serde_json::json!({"balance": c.balance as u64, "stake": c.stake as u64,
                    "tokens_used": c.tokens_used, "state": c.status.name()})
            } else if what.starts_with("worker:") {
                let c = w
                    .workers
                    .get(&addr)
                    .ok_or_else(|| format!("{what} not deployed"))?;
                serde_json::json!({"paid_tokens": c.paid_tokens, "state": c.status.name()})
            } else if what == "proxy" {
                let p = w.proxies.get(&addr).ok_or("proxy not deployed")?;
                serde_json::json!({"stake": p.stake as u64, "earned": p.earned as u64,
                    "paid_out": p.paid_out as u64, "seqno": p.seqno, "open_clients": p.open_clients,
                    "open_workers": p.open_workers, "state": p.status.name()})
            } else {
                let root = &w.root;
                serde_json::json!({"params_version": root.params_version,
                    "proxy_image_hashes": root.proxy_image_hashes.len(),
                    "worker_image_hashes": root.worker_image_hashes.len(),
                    "model_hashes": root.model_hashes.len(), "proxies": root.proxies.len()})
            };
            let want = want
                .as_object()
                .ok_or_else(|| format!("{what}: expected an object"))?;
            for (k, v) in want {
                let got = obj
                    .get(k)
                    .ok_or_else(|| format!("{what}: unknown field {k:?}"))?;
                if got != v {
                    return Err(format!("{what}.{k} = {got}, expected {v}"));
                }
            }
            continue;
        };
        if &actual != want {
            return Err(format!("{what} = {actual}, expected {want}"));
        }
    }
    Ok(())
}
