//! The committed corpus and every kept crash, replayed through every target; then a bounded
//! structure-aware random run (mutations of the valid seeds) so that CI fuzzes a little on
//! every change without AFL.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file in `fuzz/<kind>/<target>/`.
fn files(kind: &str) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let Ok(targets) = std::fs::read_dir(fuzz_dir().join(kind)) else {
        return found;
    };
    for target in targets.flatten() {
        let name = target.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(target.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.path().is_file() && file.file_name() != "README.md" {
                found.push((name.clone(), file.path()));
            }
        }
    }
    found.sort();
    found
}

fn replay(kind: &str) -> usize {
    let entries = files(kind);
    for (target, path) in &entries {
        assert!(
            cocoon_fuzz::target(target).is_some(),
            "{} is under a directory that names no target",
            path.display()
        );
        let data = std::fs::read(path).expect("corpus files are readable");
        for target in cocoon_fuzz::TARGETS {
            let outcome = std::panic::catch_unwind(|| (target.run)(&data));
            assert!(
                outcome.is_ok(),
                "target {} panics on {}",
                target.name,
                path.display()
            );
        }
    }
    entries.len()
}

#[test]
fn every_corpus_file_passes_every_target() {
    let count = replay("corpus");
    // Every target has seeds: the corpus must not silently go missing.
    for target in cocoon_fuzz::TARGETS {
        let dir = fuzz_dir().join("corpus").join(target.name);
        assert!(
            std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) > 0,
            "no corpus for {}",
            target.name
        );
    }
    assert!(count >= cocoon_fuzz::TARGETS.len());
}

#[test]
fn every_kept_crash_passes_every_target() {
    replay("regressions");
}

#[test]
fn the_committed_corpus_holds_every_seed() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (target, bytes) in cocoon_fuzz::seeds::all(&repo) {
        let path = fuzz_dir()
            .join("corpus")
            .join(target)
            .join(format!("seed-{}", cocoon_fuzz::file_name_hash(&bytes)));
        // Certificates (fresh keys), what they carry, receipts signed under them and sealed
        // requests differ per run; the rest are fixed.
        if matches!(
            target,
            "sealed" | "certificate" | "tdx_quote" | "snp" | "gpu" | "claims" | "receipt"
        ) {
            continue;
        }
        assert!(
            path.exists(),
            "seed {} missing: run `cargo run -p cocoon-fuzz --bin cocoon-fuzz-seeds`",
            path.display()
        );
    }
}

/// xorshift64*: deterministic, so a failure names the case that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A few mutations AFL also makes: byte flips, interesting values over 1/2/4-byte fields,
/// cuts, duplicated or removed ranges, and splices with another seed of the same target.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    const INTERESTING: [u32; 10] = [
        0,
        1,
        0x7f,
        0x80,
        0xff,
        0xfe,
        0x100,
        0xffff,
        0x7fff_ffff,
        u32::MAX,
    ];
    for _ in 0..1 + rng.below(4) {
        if data.is_empty() {
            data.push(rng.next() as u8);
        }
        let at = rng.below(data.len());
        match rng.below(7) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = rng.next() as u8,
            2 => {
                let value = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let width = [1, 2, 4][rng.below(3)];
                for (offset, byte) in value[..width].iter().enumerate() {
                    if let Some(slot) = data.get_mut(at + offset) {
                        *slot = *byte;
                    }
                }
            }
            3 => data.truncate(at),
            4 => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                let copy = data[at..end].to_vec();
                let to = rng.below(data.len());
                data.splice(to..to, copy);
            }
            5 => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at..end);
            }
            _ => {
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    data.truncate(at);
                    data.extend_from_slice(&other[from..]);
                }
            }
        }
    }
}

#[test]
fn mutated_seeds_pass_their_targets() {
    // COCOON_FUZZ_CASES scales the run (per seed); the default keeps the test to seconds.
    let cases: usize = std::env::var("COCOON_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(300);
    let corpus = files("corpus");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut runs = 0;
    for target in cocoon_fuzz::TARGETS {
        let seeds: Vec<Vec<u8>> = corpus
            .iter()
            .filter(|(name, _)| name == target.name)
            .map(|(_, path)| std::fs::read(path).expect("readable"))
            .collect();
        // Big targets (141 BOCs) get fewer cases per seed, so every target gets a similar share.
        let per_seed = (cases * 8 / seeds.len().max(1)).clamp(1, cases);
        for (index, seed) in seeds.iter().enumerate() {
            for case in 0..per_seed {
                let mut data = seed.clone();
                let other = &seeds[rng.below(seeds.len())];
                mutate(&mut rng, &mut data, other);
                if std::panic::catch_unwind(|| (target.run)(&data)).is_err() {
                    // Kept where scripts/fuzz.sh keeps AFL's output, to copy into
                    // fuzz/regressions/<target>/ once the bug is fixed.
                    let dir = fuzz_dir().join("out/mutated").join(target.name);
                    std::fs::create_dir_all(&dir).expect("fuzz/out is writable");
                    let path = dir.join(cocoon_fuzz::file_name_hash(&data));
                    std::fs::write(&path, &data).expect("fuzz/out is writable");
                    panic!(
                        "target {} panics on case {case} of seed {index}; input kept in {}",
                        target.name,
                        path.display()
                    );
                }
                runs += 1;
            }
        }
    }
    println!("{runs} mutated inputs");
}
