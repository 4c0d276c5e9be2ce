#!/usr/bin/env bash
# Bounded fuzzing: builds every cargo-fuzz target of fuzz/ (libFuzzer, AddressSanitizer,
# debug assertions), replays the inputs that once found bugs (fuzz/regressions/TARGET/),
# then runs each target for SECONDS_PER_TARGET (default 10) from its seed corpus
# (fuzz/corpus/TARGET, seeds from pcaps/ by ci/fuzz-seed.py). Fails if any target crashes,
# panics, leaks, times out or runs out of memory; the input is in fuzz/artifacts/TARGET/.
#
# Usage: ci/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]   (ci/test.sh: 10 s, every target)
#
# FUZZ_SANITIZER=none builds without AddressSanitizer (into fuzz/target/sanitizer-none):
# the NAT targets then run ~20x faster (ASan maps and zeroes every large table afresh per
# input), debug assertions and overflow checks stay on. Good for long local runs.
#
# cargo-fuzz needs nightly flags (-Zsanitizer). The project itself stays on stable; this
# script uses, in order: the nightly toolchain if rustup has it, nightly installed now
# (rustup, quietly), or else the stable toolchain with RUSTC_BOOTSTRAP=1 (stable ships the
# sanitizer runtimes). cargo-fuzz itself is installed from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs="${1:-10}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || ((secs < 1)); then
  echo "usage: ci/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))
sanitizer="${FUZZ_SANITIZER:-address}"

cargo=(cargo)
if command -v rustup >/dev/null && rustup run nightly rustc --version >/dev/null 2>&1; then
  cargo=(cargo +nightly)
elif command -v rustup >/dev/null \
  && rustup toolchain install nightly --profile minimal >/dev/null 2>&1 \
  && rustup run nightly rustc --version >/dev/null 2>&1; then
  cargo=(cargo +nightly)
else
  echo "fuzz: no nightly toolchain; using $(rustc --version) with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked --quiet
fi
echo "fuzz: $("${cargo[@]}" --version), $(cargo fuzz --version)"

if command -v python3 >/dev/null; then
  python3 ci/fuzz-seed.py
fi

target_dir="$root/fuzz/target"
if [[ "$sanitizer" != address ]]; then
  target_dir="$root/fuzz/target/sanitizer-$sanitizer"
fi
build=(--target-dir "$target_dir" --sanitizer "$sanitizer")
logs="$target_dir/fuzz-logs"
mkdir -p "$logs"
cd fuzz
build_start=$SECONDS
if ! "${cargo[@]}" fuzz build "${build[@]}" >"$logs/build.log" 2>&1; then
  tail -n 60 "$logs/build.log"
  echo "fuzz: build failed (log: $logs/build.log)" >&2
  exit 1
fi
echo "fuzz: built the targets ($sanitizer sanitizer) in $((SECONDS - build_start)) s"
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi

# Inputs are at most one frame for the wire targets, a sequence of frames (or of DHCP
# steps) for the others.
max_len_of() {
  case "$1" in
    wire_*) echo 4096 ;;
    *) echo 16384 ;;
  esac
}
flags=(-rss_limit_mb=2048 -timeout=20 -print_final_stats=1)

failed=()
start=$SECONDS
for t in "${targets[@]}"; do
  log="$logs/$t.log"
  : >"$log"
  # 1. The crash inputs of fixed bugs, each run once.
  if compgen -G "$root/fuzz/regressions/$t/*" >/dev/null; then
    if ! "${cargo[@]}" fuzz run "${build[@]}" "$t" "$root/fuzz/regressions/$t"/* \
      -- "${flags[@]}" >>"$log" 2>&1; then
      echo "FAIL $t: a regression input crashes again (log: $log)"
      tail -n 40 "$log"
      failed+=("$t")
      continue
    fi
    replayed=$(find "$root/fuzz/regressions/$t" -type f | wc -l)
  else
    replayed=0
  fi
  # 2. Bounded fuzzing from the corpus (new inputs are kept there, gitignored).
  mkdir -p "$root/fuzz/corpus/$t"
  if "${cargo[@]}" fuzz run "${build[@]}" "$t" "$root/fuzz/corpus/$t" \
    -- "${flags[@]}" -max_total_time="$secs" -max_len="$(max_len_of "$t")" >>"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || echo '?')
    echo "ok   $t: $runs inputs in ${secs}s, $replayed regression input(s) replayed"
  else
    echo "FAIL $t (log: $log)"
    grep -E 'panicked at|ERROR: |SUMMARY: |Test unit written to' "$log" | head -n 20 || tail -n 40 "$log"
    failed+=("$t")
  fi
done
echo "fuzz: ${#targets[@]} targets in $((SECONDS - start)) s (after the build)"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/; reproduce with: cd fuzz && cargo +nightly fuzz run TARGET ARTIFACT)" >&2
  exit 1
fi
