//! Greedy raw completion: `--example complete -- MODEL.gguf "text" [max]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("MODEL.gguf");
    let text = args.next().unwrap_or_default();
    let max = args.next().and_then(|m| m.parse().ok()).unwrap_or(16);
    let engine = cocoon_engine::Engine::load(std::path::Path::new(&path)).unwrap();
    let params = cocoon_engine::SamplingParams {
        max_tokens: max,
        ..Default::default()
    };
    let g = engine.generate(&text, &params, &mut |_| true).unwrap();
    println!("{:?}", g.text);
}
