//! Operator actions on a running worker, on its HTTP port, as the reference's worker offers
//! them: `POST /admin/disable` and `/admin/enable` (tell every proxy `worker.enabledDisabled`;
//! a disabled worker finishes what it runs and is sent nothing new), `POST /admin/coefficient`
//! with `{"coefficient": N}` (tell every proxy `worker.newCoefficient`; later handshakes
//! announce it too). Each needs `Authorization: Bearer <admin_token>`; without `admin_token`
//! in the config they answer 403 and change nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use cocoon_proto::{TlBoxed, WorkerNewCoefficient};
use serde_json::{json, Value};
use tracing::info;

use crate::config::MAX_COEFFICIENT;
use crate::WorkerShared;

/// The operator routes, merged into the worker's HTTP router.
pub(crate) fn routes() -> axum::Router<Arc<WorkerShared>> {
    axum::Router::new()
        .route("/admin/enable", post(enable))
        .route("/admin/disable", post(disable))
        .route("/admin/coefficient", post(coefficient))
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message}}))).into_response()
}

/// `None` when the request may act; else the answer to send.
fn check(shared: &WorkerShared, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = shared.config.admin_token.as_deref() else {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "operator actions are off: set admin_token in the worker's config",
        ));
    };
    let offered = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compared in constant time: the token is the whole of the protection.
    let same = offered.len() == token.len()
        && offered
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        None
    } else {
        Some(refuse(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer <admin_token>",
        ))
    }
}

fn state(shared: &WorkerShared) -> Json<Value> {
    Json(json!({
        "enabled": shared.serving(),
        "operator_disabled": shared.operator_disabled.load(Ordering::Relaxed),
        "backend_healthy": shared.backend_healthy.load(Ordering::Relaxed),
        "coefficient": shared.coefficient.load(Ordering::Relaxed),
    }))
}

fn set_disabled(shared: &WorkerShared, disabled: bool) {
    let was = shared.operator_disabled.swap(disabled, Ordering::Relaxed);
    if was != disabled {
        info!(disabled, "operator changed the worker's availability");
        shared.announce_serving();
    }
}

async fn enable(State(shared): State<Arc<WorkerShared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = check(&shared, &headers) {
        return refused;
    }
    set_disabled(&shared, false);
    state(&shared).into_response()
}

async fn disable(State(shared): State<Arc<WorkerShared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = check(&shared, &headers) {
        return refused;
    }
    set_disabled(&shared, true);
    state(&shared).into_response()
}

async fn coefficient(
    State(shared): State<Arc<WorkerShared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = check(&shared, &headers) {
        return refused;
    }
    let rule = format!("send {{\"coefficient\": N}}, N from 0 to {MAX_COEFFICIENT} (1000 = 1.0×)");
    let Some(new) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("coefficient").and_then(Value::as_i64))
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| (0..=MAX_COEFFICIENT).contains(n))
    else {
        return refuse(StatusCode::BAD_REQUEST, &rule);
    };
    let old = shared.coefficient.swap(new, Ordering::Relaxed);
    if old != new {
        info!(old, new, "operator changed the worker's coefficient");
        let message = WorkerNewCoefficient {
            new_coefficient: new,
        }
        .to_bytes();
        for link in shared
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            let _ = link.send_packet(&message);
        }
    }
    state(&shared).into_response()
}
