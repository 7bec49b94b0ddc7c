//! The engine on the real SmolLM2-135M-Instruct (Q4_1): the tokenizer gives llama.cpp's token
//! ids, and greedy decoding gives llama.cpp's text and token counts
//! (`fixtures/llama_cpp_greedy.json`, recorded by `fixtures/llama_cpp_greedy.py`).
//!
//! The model comes from the cache (`cocoon model pull`; `scripts/test.sh` pulls it first).

use std::path::PathBuf;
use std::sync::OnceLock;

use cocoon_engine::models::{cache_dir, cached, SMOLLM2_135M};
use cocoon_engine::{ChatMessage, Engine, FinishReason, SamplingParams};
use serde_json::Value;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let path: PathBuf = cached(&cache_dir(), &SMOLLM2_135M, false).unwrap_or_else(|| {
            panic!(
                "SmolLM2-135M is not in {}: run `cargo run -p cocoon -- model pull` (scripts/test.sh does)",
                cache_dir().display()
            )
        });
        Engine::load(&path).expect("the model loads")
    })
}

fn fixture() -> Value {
    let text = include_str!("fixtures/llama_cpp_greedy.json");
    serde_json::from_str(text).unwrap()
}

#[test]
fn tokens_match_llama_cpp() {
    for case in fixture()["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let expected: Vec<u32> = serde_json::from_value(case["prompt_tokens"].clone()).unwrap();
        assert_eq!(
            engine().tokenizer().encode(prompt, true),
            expected,
            "{prompt:?}"
        );
        // Decoding gives the prompt back, less its control tokens (never decoded).
        assert_eq!(
            engine().tokenizer().decode(&expected),
            prompt.replace("<|im_start|>", "").replace("<|im_end|>", ""),
            "{prompt:?}"
        );
    }
}

/// llama.cpp's best two log-probabilities closer than this (nats) are a near-tie: rounding
/// differences (its f16 KV cache, its kernels) may pick either.
const NEAR_TIE: f64 = 0.1;

#[test]
fn greedy_tokens_match_llama_cpp_up_to_the_first_near_tie() {
    let mut compared = 0;
    let mut exact_cases = 0;
    for case in fixture()["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let params = SamplingParams {
            max_tokens: case["max_tokens"].as_u64().unwrap() as usize,
            ..SamplingParams::default()
        };
        let mut streamed = String::new();
        let g = engine()
            .generate(prompt, &params, &mut |t| {
                streamed.push_str(t);
                true
            })
            .unwrap();
        assert_eq!(streamed, g.text, "the stream adds up to the text");
        assert_eq!(
            g.prompt_tokens,
            case["prompt_tokens"].as_array().unwrap().len()
        );
        let theirs: Vec<u32> = case["generated_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| serde_json::from_value::<Vec<u32>>(t.clone()).unwrap())
            .collect();
        let margins: Vec<f64> = serde_json::from_value(case["margins"].clone()).unwrap();
        let agree_until = margins
            .iter()
            .position(|m| *m < NEAR_TIE)
            .unwrap_or(theirs.len())
            .min(theirs.len());
        assert_eq!(
            g.tokens[..agree_until.min(g.tokens.len())],
            theirs[..agree_until],
            "{prompt:?}: the engine and llama.cpp part before any near-tie"
        );
        compared += agree_until;
        if agree_until == theirs.len() {
            // No near-tie at all: the whole answer and its count are llama.cpp's.
            assert_eq!(g.text, case["text"].as_str().unwrap(), "{prompt:?}");
            assert_eq!(
                g.completion_tokens as u64,
                case["completion_tokens"].as_u64().unwrap()
            );
            exact_cases += 1;
        }
    }
    assert!(
        exact_cases >= 2 && compared >= 60,
        "{exact_cases} exact cases, {compared} tokens compared"
    );
}

#[test]
fn chat_answers_the_capital_question_and_stops() {
    let prompt = engine().chat_prompt(&[ChatMessage {
        role: "user".into(),
        content: "What is the capital of France?".into(),
    }]);
    let g = engine()
        .generate(&prompt, &SamplingParams::default(), &mut |_| true)
        .unwrap();
    assert_eq!(g.text, "The capital of France is Paris.");
    assert_eq!(g.finish, FinishReason::Stop);
}

#[test]
fn stop_sequences_max_tokens_and_cancellation() {
    let prompt = "The capital of France is";
    let stop = SamplingParams {
        stop: vec![".".into()],
        ..SamplingParams::default()
    };
    let g = engine().generate(prompt, &stop, &mut |_| true).unwrap();
    assert_eq!((g.text.as_str(), g.finish), (" Paris", FinishReason::Stop));
    let short = SamplingParams {
        max_tokens: 3,
        ..SamplingParams::default()
    };
    let g = engine().generate(prompt, &short, &mut |_| true).unwrap();
    assert_eq!((g.completion_tokens, g.finish), (3, FinishReason::Length));
    let mut calls = 0;
    let g = engine()
        .generate(
            "def fibonacci(n):\n",
            &SamplingParams {
                max_tokens: 64,
                ..SamplingParams::default()
            },
            &mut |_| {
                calls += 1;
                calls < 2
            },
        )
        .unwrap();
    assert_eq!(g.finish, FinishReason::Cancelled);
    assert!(
        g.completion_tokens < 10,
        "stopped soon after the callback said so"
    );
}

#[test]
fn seeded_sampling_is_reproducible() {
    let params = SamplingParams {
        temperature: 0.8,
        top_p: 0.9,
        seed: 7,
        max_tokens: 16,
        ..SamplingParams::default()
    };
    let text = |params: &SamplingParams| {
        engine()
            .generate("Once upon a time", params, &mut |_| true)
            .unwrap()
            .text
    };
    let seeded = text(&params);
    assert_eq!(seeded, text(&params), "the same seed draws the same text");
    // And the draws are random: other seeds give other texts, and they are not all the greedy
    // one (a sampler that ignored temperature or seed would pass the check above).
    let greedy = text(&SamplingParams {
        max_tokens: 16,
        ..SamplingParams::default()
    });
    let others: std::collections::BTreeSet<String> = (1..=6)
        .map(|seed| {
            text(&SamplingParams {
                seed,
                ..params.clone()
            })
        })
        .collect();
    assert!(
        others.len() >= 3,
        "six seeds, {} texts: {others:?}",
        others.len()
    );
    assert!(
        others.iter().any(|other| *other != greedy),
        "every seed drew the greedy text {greedy:?}"
    );
}

/// Requests generated together (batched step by step, prompts chunked alongside running
/// answers) give exactly what each gives alone: batching changes speed, not results.
#[test]
fn concurrent_requests_give_what_each_gives_alone() {
    let questions = [
        "What is the capital of France?",
        "Write a haiku about the sea.",
        "List three colours.",
        "What is 2 + 2?",
        "Say hello in Spanish.",
    ];
    let prompt = |q: &str| {
        engine().chat_prompt(&[ChatMessage {
            role: "user".into(),
            content: q.into(),
        }])
    };
    let params = SamplingParams {
        max_tokens: 24,
        ..SamplingParams::default()
    };
    let alone: Vec<Vec<u32>> = questions
        .iter()
        .map(|q| {
            engine()
                .generate(&prompt(q), &params, &mut |_| true)
                .unwrap()
                .tokens
        })
        .collect();
    let together: Vec<Vec<u32>> = std::thread::scope(|s| {
        let runs: Vec<_> = questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let (prompt, params) = (prompt(q), params.clone());
                s.spawn(move || {
                    // Staggered starts: later prompts join while earlier answers stream.
                    std::thread::sleep(std::time::Duration::from_millis(15 * i as u64));
                    engine()
                        .generate(&prompt, &params, &mut |_| true)
                        .unwrap()
                        .tokens
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(together, alone);
}

#[test]
fn embeddings_are_unit_mean_pooled_vectors_independent_of_their_batch() {
    let engine = engine();
    let texts = ["The capital of France is Paris.", "I like green bananas."];
    let inputs: Vec<Vec<u32>> = texts.iter().map(|t| engine.embedding_tokens(t)).collect();
    let both = engine.embed(inputs.clone()).expect("embeds");
    assert_eq!(both.len(), 2);
    for vector in &both {
        assert_eq!(vector.len(), engine.embedding_size());
        let norm: f32 = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
    }
    let alone = engine.embed(vec![inputs[1].clone()]).expect("embeds");
    assert_eq!(
        alone[0], both[1],
        "an input's vector does not depend on its batch"
    );
    let cosine: f32 = both[0].iter().zip(&both[1]).map(|(a, b)| a * b).sum();
    assert!(cosine < 0.9999, "different texts differ: {cosine}");
    let long: Vec<u32> = engine.embedding_tokens(&"word ".repeat(300));
    assert!(long.len() > 256, "spans several 128-token chunks");
    let chunked = engine.embed(vec![long]).expect("embeds");
    assert!(chunked[0].iter().all(|v| v.is_finite()));
    assert!(
        engine.embed(vec![Vec::new()]).is_err(),
        "an empty input is refused"
    );
    assert!(
        engine.embed(vec![vec![u32::MAX]]).is_err(),
        "a token outside the vocabulary is refused"
    );
}

#[test]
fn embeddings_match_llama_cpp_mean_pooling() {
    // From llama.cpp (llama-cpp-python) on the same file; see the fixture's `source`.
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/smollm2_embedding_llama_cpp.json")).unwrap();
    let theirs: Vec<f32> = fixture["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let engine = engine();
    let text = fixture["text"].as_str().unwrap();
    let ours = engine
        .embed(vec![engine.embedding_tokens(text)])
        .expect("embeds")
        .remove(0);
    assert_eq!(ours.len(), theirs.len());
    let cosine: f32 = ours.iter().zip(&theirs).map(|(a, b)| a * b).sum();
    // Both quantize activations their own way; the vectors agree to within that (0.99982 when
    // this was written). Another pooling or no normalisation lands far below.
    assert!(
        cosine > 0.999,
        "cosine with llama.cpp's embedding: {cosine}"
    );
}
