#!/usr/bin/env python3
"""Makes the tiny HF checkpoints of tests/data/extra (other shapes than the shared fixtures) with transformers'
reference tokens and logits, in the format of the shared fixtures (golden.json + golden.safetensors: tokens_i
[P+N] int32, logits_i [P+N, V] float32; see tests/data/models and ../shared/fixtures/README.md).

    make_extra_goldens.py --out tests/data/extra            writes OUT/NAME/ for every model (or --models ...)
    make_extra_goldens.py --check tests/data/extra          makes them again in a temporary folder and exits 1
                                                            unless every file is byte-identical to DIR/NAME/

Run where torch and transformers exist (the GPU machine's Python; everything runs on its CPU, one thread).

Deterministic: each model's weights come from torch.manual_seed(crc32 of its name) (Python's hash() of a str is
salted per process, so it must not pick seeds), the prompts from a generator seeded 7, everything runs in float32
on one CPU thread with deterministic algorithms, and no file records a time or a path. The bytes depend on the
torch and transformers versions (golden.json records them) and may depend on the CPU's instruction set.

Reference, as for the shared fixtures: a fresh from_pretrained(NAME, dtype=float32) of the bf16 checkpoint (RoPE
frequencies in float32), greedy decoding by argmax of the raw logits (no logits processors: EOS may be chosen
like any other token), then one forward over the whole sequence for the logits. The script checks that every
generated token is the argmax of its row of the stored logits (a near-tie could make the cached decoding step and
the full forward disagree) and fails naming the model if not.
"""
import argparse
import filecmp
import json
import os
import shutil
import sys
import tempfile
import zlib

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

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
CASES = [(3, 40), (150, 40)]  # (prompt length, new tokens)
PROMPT_SEED = 7


def seed_of(name):
    """The weights' seed: a pure function of the model's name (the same in every process and on every machine)."""
    return zlib.crc32(name.encode("utf-8"))


def greedy(model, prompt, n):
    """n greedy tokens after prompt [1, P]: the argmax of the raw logits at each step (KV cache, no processors)."""
    out = model(prompt, use_cache=True)
    ids = prompt
    for step in range(n):
        nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
        if step + 1 < n:
            out = model(nxt, past_key_values=out.past_key_values, use_cache=True)
    return ids


def make(name, d):
    """Writes model `name` into folder d: config.json, generation_config.json, model.safetensors, golden.*."""
    kw = dict(CONFIGS[name])
    torch.manual_seed(seed_of(name))
    mt = kw.pop("model_type")
    cfg = AutoConfig.for_model(mt, **kw)
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():  # named_parameters() has a fixed order: the module tree's
            p.normal_(0.0, 0.2 if p.dim() >= 2 else 0.5)
            if "norm" in n or "ln_" in n:
                p.add_(1.0)
    model.to(torch.bfloat16).save_pretrained(d)
    ref = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(PROMPT_SEED)
    tensors, cases = {}, []
    for i, (P, N) in enumerate(CASES):
        prompt = torch.randint(3, cfg.vocab_size, (1, P), generator=g)
        with torch.no_grad():
            seq = greedy(ref, prompt, N)
            logits = ref(seq).logits[0].float()
        chosen = logits[P - 1:P + N - 1].argmax(dim=-1)
        if not torch.equal(chosen, seq[0, P:]):
            bad = int((chosen != seq[0, P:]).nonzero()[0, 0])
            sys.exit(f"{name} case {i}: generated token {bad} is not the argmax of its row of the full-sequence "
                     f"logits (a near-tie); these goldens would contradict themselves")
        tensors[f"tokens_{i}"] = seq[0].to(torch.int32).contiguous()
        tensors[f"logits_{i}"] = logits.contiguous()
        cases.append({"index": i, "prompt_len": P, "new_tokens": N})
    save_file(tensors, os.path.join(d, "golden.safetensors"))
    meta = {"model": name, "class": type(ref).__name__, "seed": seed_of(name), "cases": cases,
            "made_with": {"torch": torch.__version__, "transformers": transformers.__version__}}
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(name, type(ref).__name__, sum(p.numel() for p in ref.parameters()), "parameters, seed", seed_of(name))


def compare(made, committed):
    """The files this script made that are missing from the committed folder or differ from its copy (files it does
    not make, such as dtype_error.json, are not its to compare)."""
    diff = []
    for f in sorted(os.listdir(made)):
        c = os.path.join(committed, f)
        if not os.path.isfile(c):
            diff.append(f + " (missing)")
        elif not filecmp.cmp(os.path.join(made, f), c, shallow=False):
            diff.append(f)
    return diff


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", help="folder to write NAME/ folders into (e.g. tests/data/extra)")
    mode.add_argument("--check", help="folder of committed NAME/ folders to compare a fresh run with")
    ap.add_argument("--models", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)  # --check is the proof of byte-identity
    if a.out:  # each model made in a temporary folder and copied over only once whole
        for name in a.models:
            with tempfile.TemporaryDirectory() as tmp:
                made = os.path.join(tmp, name)
                os.makedirs(made)
                make(name, made)
                d = os.path.join(a.out, name)
                os.makedirs(d, exist_ok=True)
                for f in sorted(os.listdir(made)):
                    shutil.copyfile(os.path.join(made, f), os.path.join(d, f))
        return 0
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models:
            d = os.path.join(tmp, name)
            os.makedirs(d)
            make(name, d)
            diff = compare(d, os.path.join(a.check, name))
            print(f"{name}: {'byte-identical' if not diff else 'DIFFERS: ' + ', '.join(diff)}")
            failed += [name] if diff else []
    if failed:
        print(f"check failed: {len(failed)} of {len(a.models)} models differ from {a.check}", file=sys.stderr)
        return 1
    print(f"check passed: {len(a.models)} models byte-identical to {a.check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
