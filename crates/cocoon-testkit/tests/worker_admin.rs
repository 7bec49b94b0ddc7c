//! Operator actions on a running worker (`POST /admin/...` on its HTTP port): disabling it stops
//! new requests at the proxy and enabling it brings them back; a new coefficient reaches the
//! proxy; nothing happens without the admin token.

use std::time::Duration;

use cocoon_testkit::http::TestHttp;
use cocoon_testkit::{wait_until, Devnet};
use http::Method;
use serde_json::{json, Value};

const TOKEN: &str = "worker-admin-token-0123456789";

async fn proxy_worker(devnet: &Devnet) -> Value {
    devnet.proxy_stats().await["workers"][0].clone()
}

async fn chat_status(devnet: &Devnet) -> u16 {
    let body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]});
    devnet
        .client_http()
        .post(devnet.client_addr(), "/v1/chat/completions", &body)
        .await
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_disables_enables_and_reprices_a_running_worker() {
    let devnet = Devnet::builder()
        .worker_settings(|config| config.admin_token = Some(TOKEN.into()))
        .start()
        .await
        .unwrap();
    let worker = devnet.workers[0].http_addr;
    let http = TestHttp::new();
    let admin = |path: &'static str, token: Option<&'static str>, body: Value| {
        let http = &http;
        async move {
            let auth = token.map(|t| format!("Bearer {t}"));
            let mut headers = vec![("content-type", "application/json")];
            if let Some(auth) = &auth {
                headers.push(("authorization", auth.as_str()));
            }
            http.request(
                Method::POST,
                worker,
                path,
                &headers,
                body.to_string().into_bytes(),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(chat_status(&devnet).await, 200);

    // Without the token, or with a wrong one, nothing changes.
    assert_eq!(admin("/admin/disable", None, json!({})).await.status, 401);
    assert_eq!(
        admin(
            "/admin/disable",
            Some("worker-admin-token-wrong!!!!!"),
            json!({})
        )
        .await
        .status,
        401
    );
    assert_eq!(proxy_worker(&devnet).await["enabled"], true);

    let disabled = admin("/admin/disable", Some(TOKEN), json!({})).await;
    assert_eq!(disabled.status, 200, "{}", disabled.text());
    assert_eq!(disabled.json()["enabled"], false);
    wait_until("the proxy sees the worker disabled", || async {
        proxy_worker(&devnet).await["enabled"] == false
    })
    .await;
    assert_eq!(
        chat_status(&devnet).await,
        503,
        "no worker takes new requests"
    );
    assert_eq!(devnet.workers[0].stats().await["operator_disabled"], true);

    assert_eq!(
        admin("/admin/enable", Some(TOKEN), json!({})).await.status,
        200
    );
    wait_until("the proxy sees the worker enabled", || async {
        proxy_worker(&devnet).await["enabled"] == true
    })
    .await;
    assert_eq!(chat_status(&devnet).await, 200);

    let repriced = admin(
        "/admin/coefficient",
        Some(TOKEN),
        json!({"coefficient": 2500}),
    )
    .await;
    assert_eq!(repriced.status, 200, "{}", repriced.text());
    wait_until("the proxy sees the new coefficient", || async {
        proxy_worker(&devnet).await["coefficient"] == 2500
    })
    .await;
    assert_eq!(devnet.workers[0].stats().await["coefficient"], 2500);
    let refused = admin(
        "/admin/coefficient",
        Some(TOKEN),
        json!({"coefficient": -1}),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains("coefficient"), "{}", refused.text());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(proxy_worker(&devnet).await["coefficient"], 2500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_operator_actions_are_off() {
    let devnet = Devnet::builder().start().await.unwrap();
    let answer = TestHttp::new()
        .request(
            Method::POST,
            devnet.workers[0].http_addr,
            "/admin/disable",
            &[("authorization", "Bearer anything-at-all-0123456789")],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 403);
    assert!(answer.text().contains("admin_token"), "{}", answer.text());
    assert_eq!(devnet.proxy_stats().await["workers"][0]["enabled"], true);
}
