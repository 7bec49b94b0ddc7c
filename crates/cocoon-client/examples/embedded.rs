//! The COCOON client inside your own program, no daemon and no HTTP: start a devnet
//! (`cocoon devnet`), then run
//!
//! ```sh
//! cargo run -p cocoon-client --example embedded -- cocoon-devnet/client.toml
//! ```
//!
//! It reads the client config the devnet wrote, connects to its proxy (checking the proxy's
//! attestation and, on a paid devnet, paying from the client contract like `cocoon client`),
//! lists the models, asks one question, then streams the answer to another.

use std::time::Duration;

use cocoon_client::{Client, ClientConfig};
use cocoon_net::shutdown::ShutdownTrigger;
use futures_util::StreamExt;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("COCOON_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "cocoon-devnet/client.toml".into());
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {path}: {e} (start `cocoon devnet` first)"))?;
    let config: ClientConfig = toml::from_str(&text)?;

    let (trigger, shutdown) = ShutdownTrigger::new();
    let client = Client::start(config, shutdown).await?;
    client.wait_for_proxy(Duration::from_secs(60)).await?;

    let models = client.models().await?;
    let model = models["data"][0]["id"]
        .as_str()
        .ok_or("the proxy offers no model yet")?
        .to_string();
    println!("model: {model}");

    let answer = client
        .chat(json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}]}))
        .await?;
    println!("answer: {}", answer["choices"][0]["message"]["content"]);
    println!("usage: {}", answer["usage"]);

    print!("streamed: ");
    let mut stream = client
        .chat_stream(json!({"model": model, "messages": [{"role": "user", "content": "Name three colours."}]}))
        .await?;
    while let Some(chunk) = stream.next().await {
        print!(
            "{}",
            chunk?["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
        );
    }
    println!();
    trigger.drain();
    Ok(())
}
