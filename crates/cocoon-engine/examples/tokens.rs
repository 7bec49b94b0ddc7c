//! Prints the tokens of a text: `--example tokens -- MODEL.gguf "text"`.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("MODEL.gguf");
    let text = args.next().unwrap_or_default();
    let engine = cocoon_engine::Engine::load(std::path::Path::new(&path)).unwrap();
    let t = engine.tokenizer();
    let ids = t.encode(&text, true);
    for id in &ids {
        print!("{id}:{:?} ", String::from_utf8_lossy(&t.token_bytes(*id)));
    }
    println!();
}
