#!/usr/bin/env bash
# Instructions per evaluation for every case, through the snapshot and through the client:
# `bash benches/instructions.sh` (needs valgrind). Each figure is (run of N - run of 0) / N.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p flag-benches --bin eval_instructions
bin=target/release/eval_instructions
n=100000
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
printf '| case | snapshot | client |\n|---|---|---|\n'
for case in kill-switch plain plain-on rollout-10 five-rules lookup-10000 lookup-10000-plain-on; do
  row="| $case |"
  for via in snapshot client; do
    base=$(count "$case" 0 "$via"); full=$(count "$case" "$n" "$via")
    row="$row $(( (full - base) / n )) |"
  done
  echo "$row"
done
