//! AFL++ harness: `COCOON_FUZZ_TARGET=<name>` picks the `cocoon_fuzz` target, which then runs in
//! AFL's persistent mode (many inputs per process). `scripts/fuzz.sh` sets everything up.

fn main() {
    let name = std::env::var("COCOON_FUZZ_TARGET").unwrap_or_default();
    let Some(target) = cocoon_fuzz::target(&name) else {
        eprintln!("COCOON_FUZZ_TARGET must name one of:");
        for target in cocoon_fuzz::TARGETS {
            eprintln!("  {:16} {}", target.name, target.about);
        }
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        (target.run)(data);
    });
}
