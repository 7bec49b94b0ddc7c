//! The forward pass on the Llama, Qwen2 and Qwen3 code paths against llama.cpp: three tiny
//! random-weight GGUFs (`fixtures/tiny-*.gguf`, written by `fixtures/tiny_models.py`, which ran
//! llama-cpp-python 0.3.36 on them with an f32 KV cache and recorded `fixtures/tiny_models.json`).
//!
//! They cover attention biases (qwen2), per-head q/k norms and a head size other than
//! dim/heads (qwen3), both rotary layouts, grouped-query attention, tied and untied output, and
//! F32, Q4_0, Q4_1 and Q8_0 matrices. Every recorded step's best two logits are at least 0.088
//! apart, so greedy decoding must pick llama.cpp's tokens exactly.

use std::path::PathBuf;

use cocoon_engine::pool::Pool;
use cocoon_engine::transformer::{BatchToken, Model};
use cocoon_engine::{Engine, SamplingParams};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn recorded() -> Value {
    serde_json::from_str(include_str!("fixtures/tiny_models.json")).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn prompt_logits_match_llama_cpp() {
    let recorded = recorded();
    let pool = Pool::new(2);
    for arch in ["llama", "qwen2", "qwen3"] {
        let case = &recorded["models"][arch];
        let path = fixtures().join(case["file"].as_str().unwrap());
        let mut file = std::fs::File::open(&path).unwrap();
        let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
        let model = Model::load(&content, &mut file).unwrap();
        let prompt = ids(&case["prompt_tokens"]);
        let mut cache = model.cache(prompt.len());
        let batch: Vec<BatchToken> = prompt
            .iter()
            .enumerate()
            .map(|(position, &token)| BatchToken {
                sequence: 0,
                token,
                position,
                logits: true,
            })
            .collect();
        let logits = model.forward(&pool, &batch, &mut [&mut cache]);
        let logits: Vec<&[f32]> = logits.chunks_exact(model.config.vocab).collect();
        let top5 = case["top5"].as_array().unwrap();
        assert_eq!(logits.len(), top5.len());
        let mut worst = 0f32;
        for (position, (ours, theirs)) in logits.iter().zip(top5).enumerate() {
            for pair in theirs.as_array().unwrap() {
                let id = pair[0].as_u64().unwrap() as usize;
                let expected = pair[1].as_f64().unwrap() as f32;
                worst = worst.max((ours[id] - expected).abs());
                assert!(
                    (ours[id] - expected).abs() < 1e-3,
                    "{arch} position {position} token {id}: {} vs llama.cpp {expected}",
                    ours[id]
                );
            }
            let best = ours
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(
                best as u64,
                theirs[0][0].as_u64().unwrap(),
                "{arch} position {position}"
            );
        }
        eprintln!("{arch}: largest logit difference from llama.cpp {worst:.2e}");
    }
}

#[test]
fn greedy_decoding_matches_llama_cpp() {
    let recorded = recorded();
    for arch in ["llama", "qwen2", "qwen3"] {
        let case = &recorded["models"][arch];
        let engine =
            Engine::load_with_threads(&fixtures().join(case["file"].as_str().unwrap()), 2).unwrap();
        assert_eq!(engine.architecture, arch);
        let prompt = case["prompt"]
            .as_str()
            .unwrap_or_else(|| recorded["prompt"].as_str().unwrap());
        assert_eq!(
            engine.tokenizer().encode(prompt, true),
            ids(&case["prompt_tokens"])
        );
        let expected = ids(&case["greedy"]);
        let params = SamplingParams {
            max_tokens: expected.len(),
            ..SamplingParams::default()
        };
        let generation = engine.generate(prompt, &params, &mut |_| true).unwrap();
        assert_eq!(generation.tokens, expected, "{arch}");
    }
}
