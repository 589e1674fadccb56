#!/usr/bin/env python3
"""Makes extra tiny HF checkpoints of other shapes with transformers' reference tokens and logits, in the format of
../shared/fixtures (golden.json + golden.safetensors: tokens_i [P+N] int32, logits_i [P+N, V] float32).
Run where torch and transformers exist (the GPU machine's Python, on its CPU); writes OUT/extra.tar.gz."""
import json, os, sys, tarfile
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

OUT = sys.argv[1]
CONFIGS = {
    # Llama: 3 layers, GQA 6/3, head_dim override 24, linear RoPE scaling, attention and MLP biases, untied.
    "llama-gqa-linear": dict(model_type="llama", hidden_size=96, intermediate_size=160, num_hidden_layers=3,
                             num_attention_heads=6, num_key_value_heads=3, head_dim=24, vocab_size=512,
                             max_position_embeddings=512, attention_bias=True, mlp_bias=True,
                             rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 20000.0},
                             tie_word_embeddings=False, rms_norm_eps=1e-6),
    # Llama-3 scaling with another factor, MQA, tied.
    "llama3-mqa": dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=1, vocab_size=448, max_position_embeddings=8192,
                       rope_parameters={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 2.0,
                                        "high_freq_factor": 8.0, "original_max_position_embeddings": 32,
                                        "rope_theta": 100000.0},
                       tie_word_embeddings=True),
    # Mistral with a window of 40 over 190-token sequences, GQA 8/2.
    "mistral-window": dict(model_type="mistral", hidden_size=128, intermediate_size=192, num_hidden_layers=2,
                           num_attention_heads=8, num_key_value_heads=2, head_dim=16, vocab_size=384,
                           max_position_embeddings=512, sliding_window=40, tie_word_embeddings=False),
    # Qwen2 with MHA (no GQA), biases.
    "qwen2-mha": dict(model_type="qwen2", hidden_size=80, intermediate_size=144, num_hidden_layers=2,
                      num_attention_heads=5, num_key_value_heads=5, vocab_size=400, max_position_embeddings=512,
                      tie_word_embeddings=False),
    # Qwen3 with head_dim 32 != hidden/heads, GQA 6/2.
    "qwen3-wide-head": dict(model_type="qwen3", hidden_size=96, intermediate_size=160, num_hidden_layers=2,
                            num_attention_heads=6, num_key_value_heads=2, head_dim=32, vocab_size=384,
                            max_position_embeddings=512, tie_word_embeddings=True),
    # GPT-2 with n_inner set and 3 layers.
    "gpt2-inner": dict(model_type="gpt2", n_embd=64, n_head=8, n_layer=3, n_inner=96, vocab_size=300,
                       n_positions=256, activation_function="gelu_new"),
    # Mixtral: 3 experts, top-1, and 5 experts top-3 in another.
    "mixtral-top1": dict(model_type="mixtral", hidden_size=64, intermediate_size=80, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_local_experts=3, num_experts_per_tok=1,
                         vocab_size=384, max_position_embeddings=512),
    "mixtral-5x3": dict(model_type="mixtral", hidden_size=64, intermediate_size=48, num_hidden_layers=2,
                        num_attention_heads=2, num_key_value_heads=1, num_local_experts=5, num_experts_per_tok=3,
                        vocab_size=384, max_position_embeddings=512),
}
CASES = [(3, 40), (150, 40)]

os.makedirs(OUT, exist_ok=True)
root = os.path.join(OUT, "extra")
for name, kw in CONFIGS.items():
    torch.manual_seed(abs(hash(name)) % 1000)
    mt = kw.pop("model_type")
    cfg = AutoConfig.for_model(mt, **kw)
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.normal_(0.0, 0.2 if p.dim() >= 2 else 0.5)
            if "norm" in n or "ln_" in n:
                p.add_(1.0)
    d = os.path.join(root, name)
    model.to(torch.bfloat16).save_pretrained(d)
    # Reference: the bf16 checkpoint loaded in its dtype, then run in float32 (as the shared fixtures were made).
    ref = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16).float().eval()
    g = torch.Generator().manual_seed(7)
    tensors, cases = {}, []
    for i, (P, N) in enumerate(CASES):
        prompt = torch.randint(3, cfg.vocab_size, (1, P), generator=g)
        with torch.no_grad():
            out = ref.generate(prompt, max_new_tokens=N, min_new_tokens=N, do_sample=False, pad_token_id=0)
            logits = ref(out).logits[0].float()
        tensors[f"tokens_{i}"] = out[0].to(torch.int32).contiguous()
        tensors[f"logits_{i}"] = logits.contiguous()
        cases.append({"index": i, "prompt_len": P, "new_tokens": N})
    save_file(tensors, os.path.join(d, "golden.safetensors"))
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump({"model": name, "class": type(ref).__name__, "cases": cases}, f, indent=1)
    print(name, type(ref).__name__, sum(p.numel() for p in ref.parameters()))
with tarfile.open(os.path.join(OUT, "extra.tar.gz"), "w:gz") as t:
    t.add(root, arcname="extra")
