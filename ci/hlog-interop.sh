#!/usr/bin/env bash
# The latency logs (.hlog) are read by HdrHistogram's own Python implementation (hdrh,
# from PyPI, in a venv under target/) and must agree exactly with summary.json: the
# committed baselines always, and, when root, the output of a fresh short bench run.
# Then a self-test plants wrong values (p99 +-5 %, one bucket off, count + 1) in a copy
# of a result folder; each must be caught. See ci/hlog_check.py for the comparison.
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
    log=target/hlog-fresh.log
    if ! "$BIN" bench --mode internal --dut vnet --trial 0.3 --precision 0.5 --out target/hlog-fresh >"$log" 2>&1; then
      echo "hlog interop: the fresh bench run failed; the end of its output ($log):" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    dirs+=(target/hlog-fresh)
  elif [[ -n ${VNET_REQUIRE_PRIVILEGED:-} ]]; then
    echo "hlog interop: the fresh bench run needs root, and VNET_REQUIRE_PRIVILEGED is set" >&2
    exit 1
  fi
fi
"$VENV/bin/python" ci/hlog_check.py "${dirs[@]}"
# The check must still see a wrong value: plant some in a copy and require each caught.
"$VENV/bin/python" ci/hlog_check.py --self-test "${dirs[0]}"
