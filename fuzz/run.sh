#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30), seeded
# from real encodings. Needs the nightly toolchain and cargo-fuzz
# (installed here if missing). Usage: fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo run --quiet --features testkit --example fuzz_corpus -- fuzz/corpus
targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build
mkdir -p fuzz/logs
for t in $targets; do
  echo "== fuzz $t for ${secs}s"
  log="fuzz/logs/$t.log"
  if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $t FAILED (artifacts in fuzz/artifacts/$t)"
    exit 1
  fi
  grep -E "^Done [0-9]+ runs" "$log" || tail -n 3 "$log"
done
