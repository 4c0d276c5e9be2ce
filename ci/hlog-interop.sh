#!/usr/bin/env bash
# The latency logs (.hlog) are read by HdrHistogram's own Python implementation (hdrh,
# from PyPI, in a venv under target/) and must agree with summary.json: the committed
# baselines always, and, when root, the output of a fresh short bench run.
# Usage: bash ci/hlog-interop.sh [DIR...]   (default: results/ and a fresh run)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VNET_BENCH:-target/debug/vnet-bench}
VENV=target/hdrh-venv
if [[ ! -x $VENV/bin/python ]]; then
  python3 -m venv "$VENV"
  if ! "$VENV/bin/pip" install -q hdrhistogram; then
    echo "hlog interop: could not install hdrhistogram from PyPI; check the machine reaches pypi.org" >&2
    exit 1
  fi
fi
dirs=("$@")
if ((${#dirs[@]} == 0)); then
  dirs=(results)
  if [[ $(id -u) -eq 0 ]]; then
    [[ -x $BIN ]] || cargo build -q -p vnet-bench
    rm -rf target/hlog-fresh
    "$BIN" bench --mode internal --dut vnet --trial 0.3 --precision 0.5 --out target/hlog-fresh >/dev/null 2>&1 \
      || { echo "hlog interop: the fresh bench run failed" >&2; exit 1; }
    dirs+=(target/hlog-fresh)
  elif [[ -n ${VNET_REQUIRE_PRIVILEGED:-} ]]; then
    echo "hlog interop: the fresh bench run needs root, and VNET_REQUIRE_PRIVILEGED is set" >&2
    exit 1
  fi
fi
"$VENV/bin/python" ci/hlog_check.py "${dirs[@]}"
