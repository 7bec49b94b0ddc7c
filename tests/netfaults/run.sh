#!/usr/bin/env bash
# The multi-host fault harness (tests/netfaults/harness.py): every role on its own network
# namespace "host", five faults under load, money checked. Run by scripts/test.sh after the
# openai SDK tests, whose venv (.venv, with the `openai` package) it uses.
#
#   tests/netfaults/run.sh [harness args, e.g. --only 1,5 --keep]
#
# Env: COCOON_BIN (default target/debug/cocoon), PYTHON (default .venv/bin/python).
# Needs root (network namespaces), iproute2 and curl; as root on Debian it installs what is
# missing. Where this machine cannot make network namespaces at all (a container without
# CAP_SYS_ADMIN), it says so loudly and skips; every other failure fails.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
COCOON_BIN="${COCOON_BIN:-$REPO/target/debug/cocoon}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"

if [[ $(id -u) -ne 0 ]]; then
  echo "netfaults: SKIPPED: needs root to create network namespaces (run as root: sudo $0)" >&2
  exit 0
fi
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v curl >/dev/null 2>&1 || need+=(curl)
if (( ${#need[@]} )); then
  echo "netfaults: installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
probe="cnfprobe$$"
if ! err="$(ip netns add "$probe" 2>&1)"; then
  echo "!!! netfaults: SKIPPED: this machine cannot create network namespaces: $err" >&2
  exit 0
fi
ip netns del "$probe"
for f in "$COCOON_BIN" "$PYTHON"; do
  [[ -x "$f" ]] || { echo "netfaults: $f is missing (build cocoon; tests/e2e/run.sh makes the venv)" >&2; exit 1; }
done
exec "$PYTHON" "$HERE/harness.py" --bin "$COCOON_BIN" --python "$PYTHON" "$@"
