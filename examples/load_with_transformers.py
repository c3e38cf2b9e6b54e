"""Load specc output into Hugging Face transformers classes.

    specc build specs/gpt2-small.yaml -o gpt2/model.safetensors
    specc build specs/llama2-7b.yaml -o llama2-7b/model.safetensors --max-shard-size 2GB
    python examples/load_with_transformers.py
"""

import torch
import transformers
from safetensors.torch import load_model

# One file: load_model resolves the tied lm_head (stored once, as wte).
gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config())
load_model(gpt2, "gpt2/model.safetensors", strict=True)
print("gpt2:", gpt2(torch.tensor([[464, 3290]])).logits.shape)

# Shards: put the config beside them and from_pretrained reads model.safetensors.index.json,
# routing every tensor to its shard (bf16, as built: 13.5 GB of RAM).
cfg = transformers.LlamaConfig(
    vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=32,
)
cfg.save_pretrained("llama2-7b")
llama = transformers.LlamaForCausalLM.from_pretrained("llama2-7b", torch_dtype=torch.bfloat16)
print("llama2-7b loaded:", sum(p.numel() for p in llama.parameters()), "parameters")
