#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder of peer and chain input with AFL++ (stable Rust,
# cargo-afl). Installs cargo-afl and AFL++ if missing, builds the instrumented harness in fuzz/,
# runs each target of crates/cocoon-fuzz (two at a time) and prints, per target, executions,
# coverage and crashes. A crash's input is copied to fuzz/regressions/<target>/ and the script
# exits non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Per target. Measured on the 2-core development machine: 90 s × 17 targets, two at a time
# (about 13 minutes), gives over 10 million executions in all (see fuzz/README.md).
SECONDS_PER_TARGET=90
ONLY_TARGET=""
JOBS=2
UPDATE_CORPUS=0

usage() {
  cat <<'USAGE'
scripts/fuzz.sh [--seconds N] [--target NAME] [--jobs J] [--update-corpus]

Runs the AFL++ fuzz targets (crates/cocoon-fuzz) and prints a table: executions, execs/s,
edges found and bitmap coverage, queue size, crashes and hangs per target, then the totals.

  --seconds N       fuzz each target for N seconds (default 90: a full run, >= 10M executions)
  --target NAME     run only this target (the names are the directories of fuzz/corpus/)
  --jobs J          targets run at once (default 2, one per core)
  --update-corpus   afterwards, minimise each target's queue with afl-cmin into
                    fuzz/corpus/<target>/ (commit the result if it stays small)

Exits 1 if any target crashed or hung; the inputs are copied to fuzz/regressions/<target>/,
which the workspace test `cargo nextest run -p cocoon-fuzz --test corpus` replays from then on.
Output of the last run: fuzz/out/<target>/ (AFL's own layout), log in fuzz/out/<target>.log.
USAGE
}

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_TARGET="$2"; shift 2 ;;
    --target) ONLY_TARGET="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --update-corpus) UPDATE_CORPUS=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

echo "== cargo-afl and AFL++"
if ! cargo afl --version >/dev/null 2>&1; then
  cargo install cargo-afl --locked
fi
# Builds AFL++ from the source cargo-afl ships, once per toolchain (it refuses when already built).
if ! ls "${XDG_DATA_HOME:-$HOME/.local/share}"/afl.rs/rustc-*/afl.rs-*/afl/bin/afl-fuzz >/dev/null 2>&1; then
  cargo afl config --build
fi

echo "== instrumented build (fuzz/)"
(cd fuzz && CARGO_TARGET_DIR="$PWD/target" cargo afl build --release --locked)
BIN="$PWD/fuzz/target/release/cocoon-fuzz-afl"

if [ -n "$ONLY_TARGET" ]; then
  TARGETS="$ONLY_TARGET"
else
  TARGETS=$(ls fuzz/corpus)
fi

export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export AFL_FAST_CAL=1 AFL_IGNORE_SEED_PROBLEMS=1
mkdir -p fuzz/out

run_target() {
  local target="$1" seconds="$2" bin="$3"
  local input="fuzz/out/$target.in" output="fuzz/out/$target"
  rm -rf "$input" "$output"
  mkdir -p "$input"
  cp fuzz/corpus/"$target"/* "$input"/
  if [ -d "fuzz/regressions/$target" ]; then
    find "fuzz/regressions/$target" -type f ! -name README.md -exec cp {} "$input"/ \;
  fi
  # cargo-afl adds CmpLog (-c0): it solves the 32-bit constructor ids and magic numbers that
  # plain mutation rarely hits. (AFL_SKIP_BIN_CHECK must stay unset: without the binary check
  # AFL++ does not see the persistent-mode marker and every input times out.)
  COCOON_FUZZ_TARGET="$target" cargo afl fuzz -V "$seconds" -t 2000 -m none \
    -i "$input" -o "$output" "$bin" >"fuzz/out/$target.log" 2>&1 || true
}
export -f run_target

echo "== fuzzing: $(echo "$TARGETS" | wc -w) targets, ${SECONDS_PER_TARGET}s each, $JOBS at a time"
started=$(date +%s)
printf '%s\n' $TARGETS | xargs -P "$JOBS" -I{} bash -c 'run_target "$@"' _ {} "$SECONDS_PER_TARGET" "$BIN"
elapsed=$(( $(date +%s) - started ))

stat() { sed -n "s/^$2 *: *//p" "$1" | head -1; }

failed=0
total_execs=0
total_crashes=0
printf '\n%-16s %12s %9s %7s %8s %7s %8s %6s\n' target executions execs/s edges bitmap queue crashes hangs
for target in $TARGETS; do
  stats="fuzz/out/$target/default/fuzzer_stats"
  if [ ! -f "$stats" ]; then
    printf '%-16s did not run: see fuzz/out/%s.log\n' "$target" "$target"
    failed=1
    continue
  fi
  execs=$(stat "$stats" execs_done)
  crashes=$(stat "$stats" saved_crashes)
  hangs=$(stat "$stats" saved_hangs)
  printf '%-16s %12s %9s %7s %8s %7s %8s %6s\n' "$target" "$execs" "$(stat "$stats" execs_per_sec)" \
    "$(stat "$stats" edges_found)" "$(stat "$stats" bitmap_cvg)" "$(stat "$stats" corpus_count)" \
    "${crashes:-0}" "${hangs:-0}"
  total_execs=$((total_execs + execs))
  total_crashes=$((total_crashes + ${crashes:-0} + ${hangs:-0}))
  for kind in crashes hangs; do
    for file in "fuzz/out/$target/default/$kind"/id:*; do
      [ -f "$file" ] || continue
      mkdir -p "fuzz/regressions/$target"
      cp "$file" "fuzz/regressions/$target/${kind%es}-$(sha256sum "$file" | cut -c1-16)"
    done
  done
done
printf '%-16s %12s   (%s s wall)\n' total "$total_execs" "$elapsed"

if [ "$UPDATE_CORPUS" = 1 ]; then
  AFL_BIN_DIR=$(dirname "$(ls -d "${XDG_DATA_HOME:-$HOME/.local/share}"/afl.rs/rustc-*/afl.rs-*/afl/bin/afl-fuzz | tail -1)")
  for target in $TARGETS; do
    queue="fuzz/out/$target/default/queue"
    [ -d "$queue" ] || continue
    minimised="fuzz/out/$target.cmin"
    rm -rf "$minimised"
    # The bash afl-cmin: the Python one `cargo afl cmin` runs found no tuples in this harness.
    COCOON_FUZZ_TARGET="$target" "$AFL_BIN_DIR/afl-cmin.bash" -i "$queue" -o "$minimised" \
      -t 2000 -m none -- "$BIN" >"fuzz/out/$target.cmin.log" 2>&1 || continue
    for file in "$minimised"/*; do
      cp "$file" "fuzz/corpus/$target/afl-$(sha256sum "$file" | cut -c1-16)"
    done
  done
  echo "corpus updated: $(du -sh fuzz/corpus | cut -f1)"
fi

if [ "$total_crashes" -gt 0 ]; then
  echo "FAIL: $total_crashes crashing or hanging inputs, copied to fuzz/regressions/" >&2
  exit 1
fi
exit "$failed"
