#!/usr/bin/env bash
# Runs each libFuzzer target for N seconds (default 60): the SIP parser, the XML stream parser and
# the PIDF parser. Seeds come from the golden fixtures. Any crashing input is written to
# Tests/Fuzz/regressions/<target>/, where `swift test` (FuzzRegressionTests) replays it from then on:
# commit it together with the fix.
#   Tests/Fuzz/run.sh [SECONDS] [sip|xml|pidf ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sip xml pidf)

scratch=.build-fuzz
flags=(-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld)
work=Tests/Fuzz/work
status=0
for target in "${targets[@]}"; do
  swift build --scratch-path "$scratch" --product "fuzz-$target" "${flags[@]}" 2>&1 | grep -E "error:|Compiling|Build" | grep -v "Cannot export" || true
  binary="$scratch/debug/fuzz-$target"
  [ -x "$binary" ] || { echo "fuzz-$target did not build"; exit 1; }
  corpus="$work/$target/corpus"
  mkdir -p "$corpus" "Tests/Fuzz/regressions/$target"
  case "$target" in
    sip)  seeds=(Tests/Golden/sip-wire/*/*.sip) ;;
    xml)  seeds=(Tests/Golden/xmpp-wire/*.xml) ;;
    pidf) seeds=(Tests/Golden/bodies/*/*.xml) ;;
  esac
  # Seed names carry their folder: fixtures in different folders may share a file name.
  for seed in "${seeds[@]}"; do cp -f "$seed" "$corpus/$(echo "$seed" | tr / _)"; done
  echo "== fuzz-$target for ${seconds}s"
  if ! "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="Tests/Fuzz/regressions/$target/" "$corpus" 2>"$work/$target.log"; then
    echo "fuzz-$target found a failure; the input is in Tests/Fuzz/regressions/$target/ (log: $work/$target.log)"
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/$target.log" || true
done
exit $status
