#!/usr/bin/env bash
# specc vs dd vs PyTorch vs numpy, side by side: build gpt2-small and llama-1b (the same
# bytes, the same directory), under two sync policies:
#   cache  the file is in the page cache when the command returns (specc's default, dd,
#          safetensors.save_file as people call it)
#   fsync  the file is on the device when the command returns (specc --fsync, dd
#          conv=fsync, save_file then os.fsync)
# Before every run the outputs are removed and `sync` flushes earlier writes (not timed),
# so no run pays for the one before it. Each figure is the median wall time of RUNS runs,
# with the largest peak RSS. Then the single-core sampler throughputs, then the 7B spec,
# sharded (specc only).
#
#   bash bench/run.sh     # RUNS=3  BENCH_DIR=dir  SPECS="gpt2-small llama-1b"
#                         # POLICIES="cache fsync"  SKIP_7B=1
#
# Installs torch, numpy and safetensors into bench/.venv. Not part of cargo test or CI.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${BENCH_DIR:-$PWD/bench/out}"
RUNS="${RUNS:-3}"
SPECS="${SPECS:-gpt2-small llama-1b}"
POLICIES="${POLICIES:-cache fsync}"
mkdir -p "$OUT"
cargo build --release --quiet
cargo build --release --quiet --bench samplers
VENV=bench/.venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check torch numpy safetensors
PY="$VENV/bin/python"
SPECC="$PWD/target/release/specc"

# Every file the benchmark writes is named bench-*, so BENCH_DIR may be any directory.
clean() { rm -f "$OUT"/bench-*; sync; }

# measure CMD...: RUNS runs, each after clean(); median wall seconds into $WALL, the largest
# peak RSS (MB) into $RSS.
measure() {
  local log walls=() rss=0 wall kb
  log=$(mktemp)
  for _ in $(seq "$RUNS"); do
    clean
    /usr/bin/time -f "%e %M" -o "$log" "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; cat "$log" >&2; exit 1; }
    read -r wall kb < "$log"
    walls+=("$wall")
    (( kb > rss )) && rss=$kb
  done
  rm -f "$log"
  WALL=$(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  RSS=$((rss / 1024))
}

ratio() { "$PY" -c "print(f'{$1/$2:.2f}x')"; }
row() { printf "  %-8s %8s s %8s MB %10s\n" "$@"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB RAM, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "output directory: $OUT ($(df -h "$OUT" | awk 'NR==2 {print $1}')); median of $RUNS runs"
for spec in $SPECS; do
  bytes=$("$SPECC" summary --format json "specs/$spec.yaml" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["total_bytes"])')
  mib=$(( (bytes + 1048575) / 1048576 ))
  for policy in $POLICIES; do
    if [ "$policy" = fsync ]; then sflag=--fsync; dflag=conv=fsync; pflag=--fsync; else sflag=; dflag=; pflag=; fi
    echo
    echo "$spec ($bytes bytes), policy $policy:"
    row tool wall "peak RSS" "vs specc"
    measure "$SPECC" build "specs/$spec.yaml" -o "$OUT/bench-$spec.safetensors" $sflag; s=$WALL; row specc "$s" "$RSS" 1.00x
    measure dd if=/dev/zero of="$OUT/bench-dd.bin" bs=1M count="$mib" $dflag; d=$WALL; row dd "$d" "$RSS" "$(ratio "$d" "$s")"
    measure "$PY" bench/frameworks.py torch "$SPECC" "specs/$spec.yaml" "$OUT/bench-torch.safetensors" $pflag; t=$WALL; row pytorch "$t" "$RSS" "$(ratio "$t" "$s")"
    measure "$PY" bench/frameworks.py numpy "$SPECC" "specs/$spec.yaml" "$OUT/bench-numpy.safetensors" $pflag; n=$WALL; row numpy "$n" "$RSS" "$(ratio "$n" "$s")"
    echo "  specc / dd = $(ratio "$s" "$d"), pytorch / specc = $(ratio "$t" "$s"), numpy / specc = $(ratio "$n" "$s")"
  done
done
clean

echo
echo "single-core sampler throughput (best pass over a reused 1 Mi-value buffer):"
cargo bench --quiet --bench samplers 2>/dev/null | sed 's/^/  specc  /'
"$PY" bench/frameworks.py rates | sed 's/^/  /'

echo
echo "gpt2-small in f64 (specc --dtype f64 against torch's f64 init + save_file), policy cache:"
row tool wall "peak RSS" "vs specc"
measure "$SPECC" build specs/gpt2-small.yaml --dtype f64 -o "$OUT/bench-f64.safetensors"; s=$WALL; row specc "$s" "$RSS" 1.00x
measure "$PY" bench/frameworks.py torch "$SPECC" specs/gpt2-small.yaml "$OUT/bench-torch-f64.safetensors" --f64; t=$WALL; row pytorch "$t" "$RSS" "$(ratio "$t" "$s")"
clean

echo
echo "orthogonal of an f32 tensor, specc (format 3: Q in f32) beside torch.nn.init.orthogonal_, same threads:"
cargo build --release --quiet --bench orthogonal
for threads in 1 $(nproc); do
  RAYON_NUM_THREADS=$threads cargo bench --quiet --bench orthogonal -- f32 1024x1024 4096x4096 11008x4096 2>/dev/null | sed 's/^/  specc /'
  THREADS=$threads "$PY" bench/frameworks.py orthogonal 1024x1024 4096x4096 11008x4096 | sed 's/^/  /'
done

if [ -z "${SKIP_7B:-}" ]; then
  echo
  RUNS=1 measure "$SPECC" build specs/llama2-7b.yaml -o "$OUT/bench-llama2-7b.safetensors" --max-shard-size 2GB
  echo "llama2-7b (bf16, 13.5 GB, sharded 2GB, policy cache): $WALL s, peak RSS $RSS MB"
  RUNS=1 measure "$SPECC" build specs/llama2-7b.yaml -o "$OUT/bench-llama2-7b.safetensors" --max-shard-size 2GB --fsync
  echo "llama2-7b (bf16, 13.5 GB, sharded 2GB, policy fsync): $WALL s, peak RSS $RSS MB"
  clean
fi
