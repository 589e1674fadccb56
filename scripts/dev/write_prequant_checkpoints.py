#!/usr/bin/env python3
"""Writes small pre-quantized Hugging Face checkpoints (tests/data/prequant/NAME/) following each format's
specification, independently of kiln's reader, for tests/e2e/prequant_import_test.cpp:

  gptq           AutoGPTQ, checkpoint_format "gptq": qweight I32 [K/8, N] (8 inputs per word along K, input 8r+j in
                 bits 4j..4j+3), qzeros I32 [G, N/8] (8 outputs per word, stored as zero - 1), scales F16 [G, N],
                 g_idx I32 [K] = k // group_size
  gptq-actorder  the same with desc_act: g_idx a shuffled assignment of inputs to groups
  awq            AutoAWQ GEMM: qweight I32 [K, N/8] and qzeros I32 [K/G, N/8] packed along N in the order
                 [0, 2, 4, 6, 1, 3, 5, 7], scales F16 [K/G, N]
  bad-missing    gptq without layer 0's q_proj.scales;  bad-shape: gptq with q_proj.scales of [G, N + 8]

The weights start as random unsigned 4-bit values u, zero points z and fp16 scales s; expected.safetensors holds the
float32 weight W[n, k] = s[g(k), n] * (u[k, n] - z[g(k), n]) of every linear layer under its HF name, which the
test compares with kiln's dequantized checkpoint. A LlamaForCausalLM of hidden 64, intermediate 128, one layer, two
heads (one KV head), vocab 64, group size 32; the lm_head stays float16, as in real checkpoints.

    /usr/bin/python3 scripts/dev/write_prequant_checkpoints.py    (needs numpy: Debian's python3-numpy)
"""
import json
import os
import shutil
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests/data/prequant")
H, I, V, NH, NKV, HD, G = 64, 128, 64, 2, 1, 32, 32
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def save(path, tensors, metadata=None):
    """safetensors, written from the format's definition: u64 header size, JSON header, row-major data."""
    header, blobs, off = {}, [], 0
    names = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def pack_along_k(u):  # u [K, N] -> [K/8, N]
    K, N = u.shape
    out = np.zeros((K // 8, N), dtype=np.uint32)
    for j in range(8):
        out |= u[j::8, :].astype(np.uint32) << (4 * j)
    return out.view(np.int32)


def pack_along_n(u, order):  # u [R, N] -> [R, N/8]
    R, N = u.shape
    out = np.zeros((R, N // 8), dtype=np.uint32)
    for j in range(8):
        out |= u[:, order[j]::8].astype(np.uint32) << (4 * j)
    return out.view(np.int32)


def linear(rng, N, K, kind, actorder):
    groups = K // G
    u = rng.integers(0, 16, size=(K, N))
    z = rng.integers(1, 16, size=(groups, N))  # 1..15, so that GPTQ's z - 1 is stored unsigned
    s = rng.uniform(0.001, 0.05, size=(groups, N)).astype(np.float16)
    if actorder:
        g_idx = (rng.permutation(K) // G).astype(np.int32)
    else:
        g_idx = (np.arange(K) // G).astype(np.int32)
    w = s.astype(np.float32)[g_idx, :] * (u - z[g_idx, :]).astype(np.float32)  # [K, N]
    if kind == "awq":
        t = {"qweight": pack_along_n(u, AWQ_ORDER), "qzeros": pack_along_n(z, AWQ_ORDER), "scales": s}
    else:
        t = {"qweight": pack_along_k(u), "qzeros": pack_along_n(z - 1, list(range(8))), "scales": s,
             "g_idx": g_idx}
    return t, np.ascontiguousarray(w.T)  # expected [N, K]


def write(name, kind, actorder=False, bad=None):
    rng = np.random.default_rng(sum(map(ord, name)))  # hash() of a str is salted per process
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    tensors, expected = {}, {}
    f16 = lambda *shape: rng.uniform(-1, 1, size=shape).astype(np.float16)
    tensors["model.embed_tokens.weight"] = f16(V, H)
    tensors["model.norm.weight"] = f16(H)
    tensors["lm_head.weight"] = f16(V, H)
    p = "model.layers.0."
    tensors[p + "input_layernorm.weight"] = f16(H)
    tensors[p + "post_attention_layernorm.weight"] = f16(H)
    for mod, N, K in (("self_attn.q_proj", NH * HD, H), ("self_attn.k_proj", NKV * HD, H),
                      ("self_attn.v_proj", NKV * HD, H), ("self_attn.o_proj", H, NH * HD),
                      ("mlp.gate_proj", I, H), ("mlp.up_proj", I, H), ("mlp.down_proj", H, I)):
        t, w = linear(rng, N, K, kind, actorder)
        for k, v in t.items():
            tensors[p + mod + "." + k] = v
        expected[p + mod + ".weight"] = w
    if bad == "missing":
        del tensors[p + "self_attn.q_proj.scales"]
    if bad == "shape":
        tensors[p + "self_attn.q_proj.scales"] = f16(H // G, NH * HD + 8)
    save(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
    if bad is None:
        save(os.path.join(d, "expected.safetensors"), expected)
    if kind == "awq":
        qc = {"quant_method": "awq", "bits": 4, "group_size": G, "version": "gemm", "zero_point": True}
    else:
        qc = {"quant_method": "gptq", "bits": 4, "group_size": G, "desc_act": actorder, "sym": False,
              "checkpoint_format": "gptq"}
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
           "num_hidden_layers": 1, "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": HD,
           "vocab_size": V, "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "tie_word_embeddings": False, "torch_dtype": "float16", "hidden_act": "silu", "bos_token_id": 1,
           "eos_token_id": 2, "quantization_config": qc}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


write("gptq", "gptq")
write("gptq-actorder", "gptq", actorder=True)
write("awq", "awq")
write("bad-missing", "gptq", bad="missing")
write("bad-shape", "gptq", bad="shape")
