#!/usr/bin/env bash
# specc vs dd vs PyTorch vs numpy, side by side: build gpt2-small and llama-1b (the same
# bytes, the same directory, each followed by fsync), report wall time, ratios and peak
# RSS; then the single-core sampler throughputs; then the 7B spec, sharded (specc only).
#
#   bash bench/run.sh            # BENCH_DIR=... to write elsewhere, SKIP_7B=1 to skip the 7B build
#
# Installs torch, numpy and safetensors into bench/.venv. Not part of cargo test or CI.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${BENCH_DIR:-$PWD/bench/out}"
mkdir -p "$OUT"
cargo build --release --quiet
cargo build --release --quiet --bench samplers 2>/dev/null || true
VENV=bench/.venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check torch numpy safetensors
PY="$VENV/bin/python"
SPECC="$PWD/target/release/specc"

# run NAME CMD...: wall seconds and peak RSS (KB) of one run, into $WALL and $RSS.
run() {
  local log
  log=$(mktemp)
  /usr/bin/time -f "%e %M" -o "$log" "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; cat "$log" >&2; exit 1; }
  read -r WALL RSS < "$log"
  rm -f "$log"
}

row() { printf "%-14s %-8s %9s s %9s MB %9s\n" "$@"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB RAM; output directory $OUT"
echo
row spec tool wall "peak RSS" "vs specc"
for spec in gpt2-small llama-1b; do
  bytes=$("$SPECC" summary --format json "specs/$spec.yaml" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["total_bytes"])')
  blocks=$(( (bytes + 67108863) / 67108864 ))
  run "$SPECC" build "specs/$spec.yaml" -o "$OUT/$spec.safetensors"; s_wall=$WALL; s_rss=$RSS
  run dd if=/dev/zero of="$OUT/dd.bin" bs=64M count="$blocks" conv=fsync; d_wall=$WALL; d_rss=$RSS
  rm -f "$OUT/dd.bin"
  run "$PY" bench/frameworks.py torch "$SPECC" "specs/$spec.yaml" "$OUT/torch.safetensors"; t_wall=$WALL; t_rss=$RSS
  rm -f "$OUT/torch.safetensors"
  run "$PY" bench/frameworks.py numpy "$SPECC" "specs/$spec.yaml" "$OUT/numpy.safetensors"; n_wall=$WALL; n_rss=$RSS
  rm -f "$OUT/numpy.safetensors" "$OUT/$spec.safetensors"
  ratio() { "$PY" -c "print(f'{$1/$2:.2f}x')"; }
  row "$spec" specc "$s_wall" $((s_rss / 1024)) "1.00x"
  row "" dd "$d_wall" $((d_rss / 1024)) "$(ratio "$d_wall" "$s_wall")"
  row "" pytorch "$t_wall" $((t_rss / 1024)) "$(ratio "$t_wall" "$s_wall")"
  row "" numpy "$n_wall" $((n_rss / 1024)) "$(ratio "$n_wall" "$s_wall")"
  echo "  specc / dd = $(ratio "$s_wall" "$d_wall"), pytorch / specc = $(ratio "$t_wall" "$s_wall")"
done

echo
echo "single-core sampler throughput:"
cargo bench --quiet --bench samplers 2>/dev/null | sed 's/^/  specc  /'
"$PY" bench/frameworks.py rates | sed 's/^/  /'

if [ -z "${SKIP_7B:-}" ]; then
  echo
  run "$SPECC" build specs/llama2-7b.yaml -o "$OUT/llama2-7b.safetensors" --max-shard-size 2GB
  echo "llama2-7b (bf16, 13.5 GB, sharded 2GB): $WALL s, peak RSS $((RSS / 1024)) MB"
  rm -f "$OUT"/llama2-7b*
fi
