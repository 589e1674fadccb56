#!/usr/bin/env python3
"""The transformers peer for kiln's GPU benchmarks: the same model shapes with random bf16 weights on the same GPU.

Modes: `eager` (model.generate with the default dynamic cache) and `compile` (the gpt-fast approach: static cache,
the one-token forward compiled with CUDA graphs; decode workload only is hand-looped, see run_decode_compiled). Workloads:
  decode     batch B, P input / N output tokens: decode tok/s (per sequence) and time to first token
  ttft       one prompt of P tokens: time of the prefill forward (median of several)
  throughput R requests of P input / N output, run in static batches of B (transformers has no in-flight
             batching): output tok/s over the whole run
Writes one JSON object (GPU, torch/transformers versions, command, figures) to --out.
"""
import argparse, json, os, subprocess, sys, time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    # Llama-3.2-1B: tied embeddings, 16 layers, hidden 2048, 32 heads / 8 KV heads, head_dim 64.
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True,
                         max_position_embeddings=131072, rms_norm_eps=1e-5,
                         rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                         rope_theta=500000.0),
    # Llama-3.1-8B: 32 layers, hidden 4096, 32 heads / 8 KV heads, untied.
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False,
                         max_position_embeddings=131072, rms_norm_eps=1e-5,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                         rope_theta=500000.0),
}


def git_commit():
    # gpu-check passes the carried binaries' commit; a copied tree's own git may be older
    if os.environ.get("KILN_COMMIT"):
        return os.environ["KILN_COMMIT"]
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        return "unknown"


def make_model(shape):
    cfg = LlamaConfig(**SHAPES[shape])
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    return model, cfg


def timed(fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t, out


def generate_kwargs(mode, n):
    kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    if mode == "compile":
        kw["cache_implementation"] = "static"
    return kw


def run_decode(model, cfg, mode, batch, p, n):
    ids = torch.randint(3, cfg.vocab_size, (batch, p), device="cuda")
    kw = generate_kwargs(mode, n)
    for _ in range(2 if mode == "compile" else 1):  # warm-up (compilation happens here)
        model.generate(ids, **generate_kwargs(mode, n))
    t_first, _ = timed(lambda: model.generate(ids, **generate_kwargs(mode, 1)))
    t_all, out = timed(lambda: model.generate(ids, **kw))
    gen = out.shape[1] - p
    decode_s = max(t_all - t_first, 1e-9)
    return {"batch": batch, "input_len": p, "output_len": gen, "total_s": t_all, "ttft_ms": t_first * 1e3,
            "decode_tok_s_per_seq": (gen - 1) / decode_s, "decode_tok_s": batch * (gen - 1) / decode_s}


def make_static_cache(cfg, batch, max_len):
    """transformers' StaticCache; its constructor's arguments changed across versions."""
    from transformers import StaticCache
    tries = [dict(config=cfg, max_batch_size=batch, max_cache_len=max_len, device="cuda", dtype=torch.bfloat16),
             dict(config=cfg, max_cache_len=max_len),
             dict(config=cfg, max_batch_size=batch, max_cache_len=max_len)]
    err = None
    for kw in tries:
        try:
            return StaticCache(**kw)
        except TypeError as e:
            err = e
    raise err


def run_decode_compiled(model, cfg, batch, p, n):
    """The gpt-fast approach by hand: a static KV cache, the one-token forward (with its argmax) compiled with
    CUDA graphs (mode reduce-overhead), prefill eager; each step marks a new CUDA-graph step and clones its
    output, which transformers' own generate() does not do on this torch (it fails: "accessing tensor output of
    CUDAGraphs that has been overwritten")."""
    ids = torch.randint(3, cfg.vocab_size, (batch, p), device="cuda")
    cache = make_static_cache(cfg, batch, p + n)

    def forward(tok, pos):  # tok [B, L], pos [L]
        out = model(input_ids=tok, past_key_values=cache, cache_position=pos,
                    position_ids=pos.unsqueeze(0).expand(tok.shape[0], -1), use_cache=True)
        return out.logits[:, -1].argmax(-1, keepdim=True)

    step = torch.compile(forward, mode="reduce-overhead", fullgraph=True)

    def generate(n_new):
        cache.reset()
        with torch.no_grad():
            tok = forward(ids, torch.arange(p, device="cuda"))
            toks = [tok]
            for i in range(n_new - 1):
                torch.compiler.cudagraph_mark_step_begin()
                tok = step(tok, torch.tensor([p + i], device="cuda")).clone()
                toks.append(tok)
        return torch.cat(toks, dim=1)

    for _ in range(3):  # warm-up: compilation and CUDA-graph recording happen here
        generate(min(n, 8))
    t_first, _ = timed(lambda: generate(1))
    t_all, out = timed(lambda: generate(n))
    gen = out.shape[1]
    decode_s = max(t_all - t_first, 1e-9)
    return {"batch": batch, "input_len": p, "output_len": gen, "total_s": t_all, "ttft_ms": t_first * 1e3,
            "decode_tok_s_per_seq": (gen - 1) / decode_s, "decode_tok_s": batch * (gen - 1) / decode_s,
            "method": "static cache, torch.compile(mode=reduce-overhead, fullgraph) one-token forward + argmax"}


def run_ttft(model, cfg, p, reps=10):
    ids = torch.randint(3, cfg.vocab_size, (1, p), device="cuda")
    with torch.no_grad():
        for _ in range(3):
            model(ids)
        times = sorted(timed(lambda: model(ids))[0] for _ in range(reps))
    return {"input_len": p, "ttft_ms_median": times[len(times) // 2] * 1e3, "ttft_ms_min": times[0] * 1e3}


def run_throughput(model, cfg, mode, requests, batch, p, n):
    kw = generate_kwargs(mode, n)
    ids = torch.randint(3, cfg.vocab_size, (batch, p), device="cuda")
    model.generate(ids, **kw)  # warm-up
    done, tokens = 0, 0
    t0 = time.perf_counter()
    while done < requests:
        b = min(batch, requests - done)
        out = model.generate(ids[:b], **kw)
        tokens += b * (out.shape[1] - p)
        done += b
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"requests": requests, "batch": batch, "input_len": p, "output_len": n, "total_s": dt,
            "output_tok_s": tokens / dt, "requests_s": requests / dt}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--workload", choices=["decode", "ttft", "throughput"], required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=256)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    model, cfg = make_model(a.shape)
    if a.workload == "decode" and a.mode == "compile":
        figures = run_decode_compiled(model, cfg, a.batch, a.input_len, a.output_len)
    elif a.workload == "decode":
        figures = run_decode(model, cfg, a.mode, a.batch, a.input_len, a.output_len)
    else:
        if a.mode == "compile":
            model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
        if a.workload == "ttft":
            figures = run_ttft(model, cfg, a.input_len)
        else:
            figures = run_throughput(model, cfg, a.mode, a.requests, a.batch, a.input_len, a.output_len)
    n_params = sum(p.numel() for p in model.parameters())
    result = {"engine": f"transformers-{a.mode}", "gpu": torch.cuda.get_device_name(), "commit": git_commit(),
              "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]), "shape": a.shape,
              "params": n_params, "dtype": "bfloat16", "torch": torch.__version__,
              "transformers": transformers.__version__, "workload": a.workload, "figures": figures}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
