//! The request allow-list: a worker forwards only bodies it understands, so a client cannot
//! smuggle backend-specific switches (or unbillable options) through the network.
//!
//! The body is changed in exactly one way: a streaming request always asks the backend for a
//! usage chunk, because usage is what the worker bills from.

use serde_json::{Map, Value};

/// Which OpenAI endpoint a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`
    ChatCompletions,
    /// `/v1/completions`
    Completions,
    /// `/v1/embeddings`
    Embeddings,
}

/// Most inputs one embeddings request may carry (OpenAI's limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

impl Endpoint {
    /// The endpoint for a request path (query string ignored).
    pub fn from_path(path: &str) -> Option<Endpoint> {
        match path.split('?').next().unwrap_or_default() {
            "/v1/chat/completions" => Some(Endpoint::ChatCompletions),
            "/v1/completions" => Some(Endpoint::Completions),
            "/v1/embeddings" => Some(Endpoint::Embeddings),
            _ => None,
        }
    }

    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }

    fn allowed_fields(self) -> &'static [&'static str] {
        match self {
            Endpoint::ChatCompletions => &[
                "model",
                "messages",
                "chat_template_kwargs",
                "frequency_penalty",
                "presence_penalty",
                "logit_bias",
                "logprobs",
                "top_logprobs",
                "max_tokens",
                "max_completion_tokens",
                "n",
                "parallel_tool_calls",
                "reasoning_effort",
                "response_format",
                "seed",
                "stop",
                "stream",
                "stream_options",
                "temperature",
                "top_p",
                "tools",
                "tool_choice",
                "user",
            ],
            Endpoint::Completions => &[
                "model",
                "prompt",
                "best_of",
                "echo",
                "frequency_penalty",
                "presence_penalty",
                "logit_bias",
                "logprobs",
                "max_tokens",
                "n",
                "seed",
                "stop",
                "stream",
                "stream_options",
                "suffix",
                "temperature",
                "top_p",
                "user",
            ],
            Endpoint::Embeddings => &["model", "input", "encoding_format", "dimensions", "user"],
        }
    }
}

/// A body that passed the allow-list.
#[derive(Debug)]
pub struct ValidatedRequest {
    /// The model asked for.
    pub model: String,
    /// Whether the answer is an SSE stream.
    pub stream: bool,
    /// Whether the client itself asked for the usage chunk (otherwise we strip it).
    pub client_wants_usage: bool,
    /// The body to send to the backend.
    pub body: Vec<u8>,
    /// Bytes of prompt text (message contents or the completion prompt), for an estimate when
    /// the backend reports no usage.
    pub prompt_bytes: usize,
}

/// Bytes of text in a message content or prompt: a string, or the text parts of an array.
fn text_bytes(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p {
                Value::Object(part) => part.get("text").map_or(0, text_bytes),
                other => text_bytes(other),
            })
            .sum(),
        _ => 0,
    }
}

/// Checks a request body against the endpoint's allow-list. Errors are messages for the app.
pub fn validate_request(endpoint: Endpoint, body: &[u8]) -> Result<ValidatedRequest, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("request body must be a JSON object".into());
    };
    let allowed = endpoint.allowed_fields();
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "unknown field '{unknown}' for {}; allowed fields: {}",
            endpoint.path(),
            allowed.join(", ")
        ));
    }
    let model = match object.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        Some(_) => return Err("'model' must be a non-empty string".into()),
        None => return Err("'model' is required".into()),
    };
    match endpoint {
        Endpoint::ChatCompletions => match object.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => {}
            Some(_) => return Err("'messages' must be a non-empty array".into()),
            None => return Err("'messages' is required".into()),
        },
        Endpoint::Completions => match object.get("prompt") {
            Some(Value::String(_)) | Some(Value::Array(_)) => {}
            Some(_) => return Err("'prompt' must be a string or an array".into()),
            None => return Err("'prompt' is required".into()),
        },
        Endpoint::Embeddings => check_embeddings(&object)?,
    }
    check_types(&object)?;
    let prompt_bytes = match endpoint {
        Endpoint::ChatCompletions => {
            object
                .get("messages")
                .and_then(Value::as_array)
                .map_or(0, |messages| {
                    messages
                        .iter()
                        .map(|m| m.get("content").map_or(0, text_bytes))
                        .sum()
                })
        }
        Endpoint::Completions => object.get("prompt").map_or(0, text_bytes),
        Endpoint::Embeddings => object.get("input").map_or(0, text_bytes),
    };
    let stream = matches!(object.get("stream"), Some(Value::Bool(true)));
    let client_wants_usage = object
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = if stream && !client_wants_usage {
        if object.contains_key("stream_options") {
            let options = object
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(options) = options {
                options.insert("include_usage".into(), Value::Bool(true));
            }
            serde_json::to_vec(&object).map_err(|e| e.to_string())?
        } else {
            // The common case: splice the option in after the opening brace instead of
            // re-serialising the whole (possibly long) prompt. The body is a valid object, so
            // its first non-blank byte is `{`.
            let open = body
                .iter()
                .position(|b| *b == b'{')
                .ok_or("request body must be a JSON object")?;
            let empty = object.is_empty();
            let mut spliced = Vec::with_capacity(body.len() + 48);
            spliced.extend_from_slice(&body[..=open]);
            spliced.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
            if !empty {
                spliced.push(b',');
            }
            spliced.extend_from_slice(&body[open + 1..]);
            spliced
        }
    } else {
        body.to_vec()
    };
    Ok(ValidatedRequest {
        model,
        stream,
        client_wants_usage,
        body,
        prompt_bytes,
    })
}

/// The embeddings fields: `input` a non-empty string, or a non-empty array of at most
/// [`MAX_EMBEDDING_INPUTS`] strings, token ids or arrays of token ids; `encoding_format`
/// `float` or `base64`; `dimensions` a positive integer.
fn check_embeddings(object: &Map<String, Value>) -> Result<(), String> {
    const INPUT_RULE: &str = "'input' must be a string, an array of strings, an array of token ids or an array of arrays of token ids";
    let is_token = |v: &Value| v.as_u64().is_some_and(|t| t <= u64::from(u32::MAX));
    match object.get("input") {
        Some(Value::String(text)) if !text.is_empty() => {}
        Some(Value::String(_)) => return Err("'input' must not be empty".into()),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err("'input' must not be empty".into());
            }
            if items.len() > MAX_EMBEDDING_INPUTS {
                return Err(format!(
                    "'input' holds {} inputs; at most {MAX_EMBEDDING_INPUTS}",
                    items.len()
                ));
            }
            let valid = items
                .iter()
                .all(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                || items.iter().all(is_token)
                || items.iter().all(|v| {
                    v.as_array()
                        .is_some_and(|ids| !ids.is_empty() && ids.iter().all(is_token))
                });
            if !valid {
                return Err(INPUT_RULE.into());
            }
        }
        Some(_) => return Err(INPUT_RULE.into()),
        None => return Err("'input' is required".into()),
    }
    match object.get("encoding_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "float" || f == "base64" => {}
        Some(_) => return Err("'encoding_format' must be \"float\" or \"base64\"".into()),
    }
    match object.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {}
        Some(_) => return Err("'dimensions' must be a positive integer".into()),
    }
    Ok(())
}

fn check_types(object: &Map<String, Value>) -> Result<(), String> {
    let number_in = |name: &str, low: f64, high: f64| -> Result<(), String> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Number(n)) if n.as_f64().is_some_and(|v| (low..=high).contains(&v)) => {
                Ok(())
            }
            Some(_) => Err(format!(
                "'{name}' must be a number between {low} and {high}"
            )),
        }
    };
    number_in("temperature", 0.0, 2.0)?;
    number_in("top_p", 0.0, 1.0)?;
    number_in("frequency_penalty", -2.0, 2.0)?;
    number_in("presence_penalty", -2.0, 2.0)?;
    for name in ["max_tokens", "max_completion_tokens"] {
        match object.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64().is_some() => {}
            Some(_) => return Err(format!("'{name}' must be a non-negative integer")),
        }
    }
    match object.get("n") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {}
        Some(_) => return Err("'n' must be a positive integer".into()),
    }
    match object.get("stream") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(_) => return Err("'stream' must be a boolean".into()),
    }
    match object.get("stream_options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(options)) => {
            for (key, value) in options {
                match key.as_str() {
                    "include_usage" | "include_obfuscation" if value.is_boolean() => {}
                    "include_usage" | "include_obfuscation" => {
                        return Err(format!("'stream_options.{key}' must be a boolean"))
                    }
                    other => return Err(format!("unknown option '{other}' in stream_options")),
                }
            }
        }
        Some(_) => return Err("'stream_options' must be an object".into()),
    }
    // Extra variables for the model's chat template (vLLM, SGLang and llama.cpp's server take
    // them; e.g. Qwen3's `enable_thinking`): forwarded as sent, so bounded here.
    match object.get("chat_template_kwargs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(kwargs)) => {
            let size = serde_json::to_vec(kwargs).map_or(usize::MAX, |v| v.len());
            if size > MAX_CHAT_TEMPLATE_KWARGS_BYTES {
                return Err(format!(
                    "'chat_template_kwargs' is {size} bytes of JSON; at most {MAX_CHAT_TEMPLATE_KWARGS_BYTES}"
                ));
            }
        }
        Some(_) => return Err("'chat_template_kwargs' must be an object".into()),
    }
    Ok(())
}

/// The most JSON `chat_template_kwargs` may carry.
pub const MAX_CHAT_TEMPLATE_KWARGS_BYTES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named() {
        let error = validate_request(
            Endpoint::ChatCompletions,
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"bogus":1}"#,
        )
        .unwrap_err();
        assert!(error.contains("unknown field 'bogus'"), "{error}");
    }

    #[test]
    fn tools_and_response_format_pass_through_unchanged() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto","response_format":{"type":"json_object"}}"#;
        let request = validate_request(Endpoint::ChatCompletions, body).unwrap();
        assert_eq!(request.body, body.to_vec());
        assert!(!request.stream);
    }

    #[test]
    fn chat_template_kwargs_pass_through_and_are_bounded() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"chat_template_kwargs":{"enable_thinking":false}}"#;
        let request = validate_request(Endpoint::ChatCompletions, body).unwrap();
        assert_eq!(request.body, body.to_vec());
        let not_object = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"chat_template_kwargs":true}"#;
        let error = validate_request(Endpoint::ChatCompletions, not_object).unwrap_err();
        assert!(error.contains("must be an object"), "{error}");
        let huge = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"chat_template_kwargs":{{"k":"{}"}}}}"#,
            "a".repeat(MAX_CHAT_TEMPLATE_KWARGS_BYTES)
        );
        let error = validate_request(Endpoint::ChatCompletions, huge.as_bytes()).unwrap_err();
        assert!(error.contains("at most 4096"), "{error}");
        // Only chat templates take them.
        let completions = br#"{"model":"m","prompt":"x","chat_template_kwargs":{}}"#;
        let error = validate_request(Endpoint::Completions, completions).unwrap_err();
        assert!(
            error.contains("unknown field 'chat_template_kwargs'"),
            "{error}"
        );
    }

    #[test]
    fn streams_are_forced_to_report_usage() {
        let request = validate_request(
            Endpoint::ChatCompletions,
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#,
        )
        .unwrap();
        assert!(request.stream && !request.client_wants_usage);
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["stream_options"]["include_usage"], Value::Bool(true));
        assert_eq!(body["stream"], Value::Bool(true));
        assert_eq!(body["messages"][0]["content"], "x");

        let request = validate_request(
            Endpoint::ChatCompletions,
            br#" {"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_obfuscation":false}}"#,
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["stream_options"]["include_usage"], Value::Bool(true));
        assert_eq!(
            body["stream_options"]["include_obfuscation"],
            Value::Bool(false)
        );
    }

    #[test]
    fn bad_types_are_rejected() {
        for body in [
            &br#"{"model":"m","messages":"x"}"#[..],
            br#"{"model":1,"messages":[{}]}"#,
            br#"{"model":"m","messages":[{}],"temperature":"hot"}"#,
            br#"{"model":"m","messages":[{}],"max_tokens":-1}"#,
            br#"{"model":"m","messages":[{}],"stream_options":{"x":true}}"#,
            br#"[1,2]"#,
            br#"{"#,
        ] {
            assert!(validate_request(Endpoint::ChatCompletions, body).is_err());
        }
        assert!(validate_request(Endpoint::Completions, br#"{"model":"m"}"#).is_err());
    }
}
