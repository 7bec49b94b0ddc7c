#!/usr/bin/env bash
# End-to-end test: the real `openai` Python SDK against `cocoon devnet`.
#
#   tests/e2e/run.sh [extra pytest args]
#
# Env:
#   COCOON_BIN  the cocoon binary (default: target/debug/cocoon under the repo)
#   PYTHON      interpreter used to create the venv (default: python3)
#
# Creates/uses the venv $REPO/.venv, installs tests/e2e/requirements.txt into
# it (only when the requirements changed since the last install), installs
# chromium when missing (as root, with apt-get), and runs pytest -q. Exits
# non-zero on any failure, including "no tests collected".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$REPO/.venv"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.e2e-requirements.sha256"
PYTHON="${PYTHON:-python3}"

export COCOON_BIN="${COCOON_BIN:-$REPO/target/debug/cocoon}"
case "$COCOON_BIN" in
  /*) ;;
  *) COCOON_BIN="$REPO/$COCOON_BIN" ;;
esac
if [[ ! -x "$COCOON_BIN" ]]; then
  echo "e2e: cocoon binary not found or not executable: $COCOON_BIN" >&2
  echo "e2e: build it first (cargo build -p cocoon) or set COCOON_BIN" >&2
  exit 1
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "e2e: creating venv at $VENV"
  if ! "$PYTHON" -m venv "$VENV"; then
    echo "e2e: '$PYTHON -m venv' failed (on Debian: apt-get install -y python3-venv)" >&2
    exit 1
  fi
fi

# llama-cpp-python compiles llama.cpp from its sdist. Left to itself it builds for the host
# CPU (GGML_NATIVE), which on hosts that report AMX emits tile instructions that a VM without
# AMX permission kills with a general protection fault on the first request. Build for a fixed,
# portable x86-64 level instead, never from a wheel cached by an earlier native build.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"

want="$( (cat "$REQ"; echo "$LLAMA_CMAKE_ARGS") | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]] || ! "$VENV/bin/python" -c 'import openai, pytest' 2>/dev/null; then
  echo "e2e: installing $(grep -cv '^\s*\(#\|$\)' "$REQ") pinned requirements into $VENV (llama.cpp builds from source: about 5 minutes on 2 cores)"
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    --no-cache-dir --force-reinstall -r "$REQ"
  echo "$want" > "$STAMP"
fi

# test_dashboards.py renders each role's dashboard in Debian's chromium (headless): installed
# here when missing, as bench/relay.sh installs nginx; elsewhere that test skips, loudly.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "e2e: installing chromium with apt-get (for the dashboards' browser test)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
  else
    echo "e2e: WARNING: chromium is missing and cannot be installed here (not root with apt-get):" >&2
    echo "e2e: WARNING: the dashboards' browser test will SKIP (Debian: apt-get install -y chromium)" >&2
  fi
fi

cd "$REPO"
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$HERE" "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "e2e: pytest collected no tests; treating as failure" >&2
  exit 1
fi
exit $rc
