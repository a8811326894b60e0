#!/usr/bin/env bash
# Time `make demo` and `make test` on a fresh clone: a new virtual environment, an empty
# data cache, nothing installed by hand. Prints the wall times and the demo's metrics.
#
# Usage: bash benchmarks/fresh_clone.sh [demo|test|both]   (default: both)
# Writes benchmarks/fresh_clone.json with the timings and the demo's metrics.
set -euo pipefail
which=${1:-both}
repo=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/causalvae"
if [ -d "$repo/../shared" ]; then ln -s "$(cd "$repo/../shared" && pwd)" "$work/shared"; fi
cd "$work/causalvae"
export CAUSALVAE_DATA_DIR="$work/cache"
demo_s=null test_s=null
if [ "$which" = demo ] || [ "$which" = both ]; then
  start=$(date +%s)
  make demo DEMO_ARGS="-o $work/report"
  demo_s=$(( $(date +%s) - start ))
  cp "$work/report/metrics.json" "$repo/benchmarks/fresh_clone_metrics.json"
fi
if [ "$which" = test ] || [ "$which" = both ]; then
  start=$(date +%s)
  make test
  test_s=$(( $(date +%s) - start ))
fi
commit=$(git rev-parse --short HEAD)
printf '{"commit": "%s", "date": "%s", "cores": %s, "make_demo_s": %s, "make_test_s": %s}\n' \
  "$commit" "$(date -u +%F)" "$(nproc)" "$demo_s" "$test_s" | tee "$repo/benchmarks/fresh_clone.json"
