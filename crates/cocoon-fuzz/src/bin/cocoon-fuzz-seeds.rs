//! Writes the seed corpus: `fuzz/corpus/<target>/seed-<hash>` for every seed of
//! `cocoon_fuzz::seeds::all`. Files already there (AFL finds, minimised) are left alone.

use std::path::PathBuf;

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = repo.join("fuzz/corpus");
    let mut written = 0;
    for (target, bytes) in cocoon_fuzz::seeds::all(&repo) {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory can be made");
        let path = dir.join(format!("seed-{}", cocoon_fuzz::file_name_hash(&bytes)));
        if !path.exists() {
            std::fs::write(&path, &bytes).expect("the corpus is writable");
            written += 1;
        }
    }
    println!("{written} new seed files under {}", corpus.display());
}
