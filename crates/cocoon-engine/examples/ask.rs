//! `cargo run --release -p cocoon-engine --example ask -- MODEL.gguf "question"`: one greedy
//! answer, streamed, with timings.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("MODEL.gguf");
    let question = args
        .next()
        .unwrap_or_else(|| "What is the capital of France?".into());
    let engine = cocoon_engine::Engine::load(std::path::Path::new(&path)).unwrap();
    let prompt = engine.chat_prompt(&[cocoon_engine::ChatMessage {
        role: "user".into(),
        content: question,
    }]);
    let params = cocoon_engine::SamplingParams {
        max_tokens: 64,
        ..Default::default()
    };
    let g = engine
        .generate(&prompt, &params, &mut |t| {
            print!("{t}");
            true
        })
        .unwrap();
    println!();
    eprintln!(
        "prompt {} tokens, completion {} tokens, ttft {:.3} s, decode {:.1} tok/s, {:?}",
        g.prompt_tokens,
        g.completion_tokens,
        g.time_to_first_token,
        (g.completion_tokens.saturating_sub(1)) as f64 / g.decode_seconds.max(1e-9),
        g.finish
    );
}
