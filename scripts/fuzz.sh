#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (cargo-fuzz and libFuzzer, on nightly Rust) and runs each one
# for a number of seconds, then prints its executions, rate and crashes.
#
#   scripts/fuzz.sh [SECONDS]      seconds per target: the argument, else $FUZZ_SECONDS, else 600
#   FUZZ_TARGETS="text_stream" scripts/fuzz.sh 60      only some targets
#   FUZZ_RUNS=1000000 scripts/fuzz.sh 1800             each target stops after this many executions
#
# cargo-fuzz is installed at a pinned version into target/tools if it is not there. The seeds in
# fuzz/seeds/<target> are only read; what the fuzzer learns goes to fuzz/corpus/<target> and a
# crashing input to fuzz/artifacts/<target> (both git-ignored). Exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${FUZZ_SECONDS:-600}}
targets=${FUZZ_TARGETS:-load_model load_gguf load_pickle shard_index tokenizer_files tokenizer_roundtrip generate_options text_stream packed_cache}
cargo_fuzz_version=0.13.2
tools=$PWD/target/tools

if [ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  cargo install --quiet --locked cargo-fuzz --version "$cargo_fuzz_version" --root "$tools"
fi
export PATH="$tools/bin:$PATH"

# cargo-fuzz has no --locked: fetching with it first fails if fuzz/Cargo.lock is out of date.
cargo +nightly fetch --locked --manifest-path fuzz/Cargo.toml
cargo +nightly fuzz build --fuzz-dir fuzz

failed=0
summary=()
for target in $targets; do
  corpus=$PWD/fuzz/corpus/$target
  artifacts=$PWD/fuzz/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  log=$(mktemp)
  before=$(find "$artifacts" -type f | wc -l)
  started=$SECONDS
  # The roundtrip re-encodes its whole input each run, and the corpus drifts to inputs of a few KB
  # that cut the rate fourfold; GPT-2 encodes word by word, so 256 bytes reach what longer ones do.
  max_len=()
  [ "$target" = tokenizer_roundtrip ] && max_len=(-max_len=256)
  # -timeout: an input that runs 10 s is a hang; -rss_limit_mb: one that needs 2 GiB is an
  # unbounded allocation (the inputs are a few KB). Both are reported as crashes.
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus" "$PWD/fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -runs="${FUZZ_RUNS:--1}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${max_len[@]}" 2>&1 |
    tee "$log" | grep -E '^(#[0-9]+.*(pulse|DONE)|Done|==|thread)' || true
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  crashes=$(($(find "$artifacts" -type f | wc -l) - before))
  line="$target: ${runs:-?} executions in $((SECONDS - started)) s (${rate:-?} exec/s), $crashes crashes"
  if [ "$crashes" -gt 0 ] || ! grep -q '^Done ' "$log"; then
    failed=1
    line="$line; FAILED, see fuzz/artifacts/$target and $log"
  else
    rm -f "$log"
  fi
  summary+=("$line")
done

echo
echo "fuzzing, at most $seconds s${FUZZ_RUNS:+ and $FUZZ_RUNS executions} per target:"
printf '  %s\n' "${summary[@]}"
exit "$failed"
