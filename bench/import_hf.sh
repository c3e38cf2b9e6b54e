#!/usr/bin/env bash
# A Llama fixture from a config.json, two ways, side by side (issue 12's figure):
#   specc   specc import hf config.json -o spec.yaml && specc build spec.yaml -o dir/model.safetensors
#   hf      AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(dir)).save_pretrained(out)
# for a tiny 2-layer Llama (hidden 64, vocab 32000) and TinyLlama's shape at 2 layers (219M
# parameters). Each figure is the median wall time of RUNS runs (/usr/bin/time), with the
# largest peak RSS. Uses the interop venv (.venv, as .ci/run makes it).
#
#   bash bench/import_hf.sh       # RUNS=5  BENCH_DIR=dir
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${BENCH_DIR:-$PWD/bench/out}/import"
RUNS="${RUNS:-5}"
PY="${PY:-$PWD/.venv/bin/python}"
cargo build --release --quiet
SPECC="$PWD/target/release/specc"
mkdir -p "$OUT"
"$PY" - "$OUT" <<'PYEOF'
import sys, transformers
out = sys.argv[1]
for name, kw in [("tiny", dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2)),
                 ("tinyllama-2l", dict(hidden_size=2048, intermediate_size=5632, num_attention_heads=32, num_key_value_heads=4, rms_norm_eps=1e-5))]:
    c = transformers.LlamaConfig(vocab_size=32000, num_hidden_layers=2, **kw)
    c.architectures = ["LlamaForCausalLM"]
    c.save_pretrained(f"{out}/{name}")
PYEOF
cat > "$OUT/hf.py" <<'PYEOF'
import sys, transformers
cfg = transformers.AutoConfig.from_pretrained(sys.argv[1])
transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(sys.argv[2])
PYEOF

# measure LABEL CMD...: the median wall seconds and the largest peak RSS of RUNS runs.
measure() {
  local label=$1 walls=() rss=0 log
  shift
  log=$(mktemp)
  for _ in $(seq "$RUNS"); do
    rm -rf "$OUT/run"; mkdir -p "$OUT/run"
    /usr/bin/time -f "%e %M" -o "$log" "$@" >/dev/null 2>&1
    read -r w kb <"$log"
    walls+=("$w")
    (( kb > rss )) && rss=$kb
  done
  rm -f "$log"
  printf '%-24s %8.3f s %8d MB\n' "$label" "$(printf '%s\n' "${walls[@]}" | sort -g | sed -n "$(( (RUNS + 1) / 2 ))p")" $(( rss / 1024 ))
}

for m in tiny tinyllama-2l; do
  measure "specc $m" sh -c "'$SPECC' import hf '$OUT/$m/config.json' -o '$OUT/run/spec.yaml' && '$SPECC' build '$OUT/run/spec.yaml' -o '$OUT/run/model.safetensors'"
  measure "transformers $m" "$PY" "$OUT/hf.py" "$OUT/$m" "$OUT/run"
done
