#!/usr/bin/env bash
# The front end's scaling: `specc check` (parse, resolve, every lint including the signal
# and symmetry ones) and `specc summary --format json` on specs of 1k, 10k and 100k layers,
# two shapes: an MLP of dense/relu layers with a layer norm every third, and transformer-like
# blocks (layer_norm, dense+gelu, dense, dropout). Median wall time of RUNS runs, peak RSS,
# and the ratio to the 1k spec (linear in the layers means 10x and 100x).
#
#   bash bench/frontend.sh        # RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
cargo build --release --quiet
SPECC="$PWD/target/release/specc"
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

spec() { # spec KIND N -> path
  local kind=$1 n=$2 f="$DIR/$1-$2.yaml"
  python3 - "$kind" "$n" "$f" <<'PY'
import sys
kind, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "mlp":
    rows = ["  - {type: layer_norm}" if i % 3 == 0 else "  - {type: dense, units: 64, activation: relu}" for i in range(n)]
    head = ["name: deep-mlp", "input: [64]", "layers:"]
else:
    block = ["  - {type: layer_norm}", "  - {type: dense, units: 256, activation: gelu}",
             "  - {type: dense, units: 64}", "  - {type: dropout, rate: 0.1}"]
    rows = [block[i % 4] for i in range(n)]
    head = ["name: deep-blocks", "input: [16, 64]", "layers:"]
open(path, "w").write("\n".join(head + rows) + "\n")
PY
  echo "$f"
}

measure() { # measure CMD... -> "median_s peak_mb" (wall by perf_counter: 1k layers take ms)
  python3 - "$RUNS" "$@" <<'PY'
import resource, statistics, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
walls = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    walls.append(time.perf_counter() - t)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
print(f"{statistics.median(walls):.4f} {rss}")
PY
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); median of $RUNS runs"
for kind in mlp blocks; do
  for cmd in check summary; do
    echo
    echo "$kind, specc $cmd:"
    printf "  %8s %9s %9s %8s\n" layers wall "peak RSS" "vs 1k"
    base=
    for n in 1000 10000 100000; do
      f=$(spec "$kind" "$n")
      if [ "$cmd" = check ]; then read -r w mb < <(measure "$SPECC" check "$f"); else read -r w mb < <(measure "$SPECC" summary --format json "$f"); fi
      [ -z "$base" ] && base=$w
      printf "  %8s %8ss %7sMB %8s\n" "$n" "$w" "$mb" "$(python3 -c "print(f'{$w/$base:.0f}x')")"
    done
  done
done
