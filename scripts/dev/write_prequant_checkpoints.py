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
  fp8-ct-tensor  compressed-tensors float-quantized: weight F8_E4M3 [N, K], weight_scale per tensor ([] or [1]),
                 static input_scale, kv_cache_scheme with self_attn.k_scale / v_scale; q/k/v share a weight scale,
                 gate and up do not (kiln requantizes up to gate's larger one)
  fp8-ct-channel compressed-tensors with weight_scale [N, 1] per channel and dynamic per-token activations
  fp8-modelopt   ModelOpt (quant_method modelopt, quant_algo FP8), scalar scales, KV scales as
                 self_attn.k_proj.k_scale / v_proj.v_scale
  bad-fp8-scale  fp8-ct-channel with q_proj.weight_scale of [N + 1, 1]

The weights start as random unsigned 4-bit values u, zero points z and fp16 scales s; expected.st holds the
float32 weight W[n, k] = s[g(k), n] * (u[k, n] - z[g(k), n]) of every linear layer under its HF name, which the
test compares with kiln's dequantized checkpoint. A LlamaForCausalLM of hidden 32, intermediate 64, one layer, two
heads of 16 (one KV head), vocab 32, group size 16; the lm_head stays float16, as in real checkpoints. (expected.st is
named so that kiln convert, which reads every *.safetensors of a folder, does not take it for a shard.)

    /usr/bin/python3 scripts/dev/write_prequant_checkpoints.py    (needs numpy: Debian's python3-numpy)
"""
import json
import os
import shutil
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests/data/prequant")
H, I, V, NH, NKV, HD, G = 32, 64, 32, 2, 1, 16, 16
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def save(path, tensors, metadata=None):
    """safetensors, written from the format's definition: u64 header size, JSON header, row-major data."""
    header, blobs, off = {}, [], 0
    names = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.int32): "I32",
             np.dtype(np.uint8): "F8_E4M3"}  # uint8 arrays here are always fp8 e4m3 codes
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
        save(os.path.join(d, "expected.st"), expected)
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


def e4m3(codes):
    """fp8 e4m3 codes -> float32 values, from the format's definition (bias 7, subnormals; no NaN codes used)."""
    c = codes.astype(np.int32)
    sign = np.where(c & 0x80, -1.0, 1.0)
    e, m = (c >> 3) & 0xF, c & 7
    v = np.where(e == 0, np.ldexp(m / 8.0, -6), np.ldexp(1.0 + m / 8.0, e - 7))
    return (sign * v).astype(np.float32)


def write_fp8(name, kind, bad=False):
    rng = np.random.default_rng(sum(map(ord, name)))
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
    shared = {"self_attn": np.float32(0.0125), "mlp": np.float32(0.02)}
    for mod, N, K in (("self_attn.q_proj", NH * HD, H), ("self_attn.k_proj", NKV * HD, H),
                      ("self_attn.v_proj", NKV * HD, H), ("self_attn.o_proj", H, NH * HD),
                      ("mlp.gate_proj", I, H), ("mlp.up_proj", I, H), ("mlp.down_proj", H, I)):
        sign = (rng.integers(0, 2, size=(N, K)) * 0x80).astype(np.uint8)
        codes = rng.integers(0, 0x7F, size=(N, K)).astype(np.uint8) | sign  # no NaN code (0x7f, 0xff)
        if kind == "channel":
            s = rng.uniform(0.001, 0.01, size=(N, 1)).astype(np.float32)
        else:
            s = shared[mod.split(".")[0]] if mod != "mlp.up_proj" or kind == "modelopt" else np.float32(0.005)
            s = np.array(s, dtype=np.float32).reshape([] if mod.endswith("q_proj") or kind == "modelopt" else [1])
        tensors[p + mod + ".weight"] = codes
        tensors[p + mod + ".weight_scale"] = s
        if kind != "channel":
            tensors[p + mod + ".input_scale"] = np.array(rng.uniform(0.01, 0.1), dtype=np.float32).reshape([])
        expected[p + mod + ".weight"] = e4m3(codes) * s.reshape(-1, 1) if s.size > 1 else e4m3(codes) * s.reshape(())
    if kind == "tensor":
        tensors[p + "self_attn.k_scale"] = np.array(0.03, dtype=np.float32).reshape([])
        tensors[p + "self_attn.v_scale"] = np.array(0.07, dtype=np.float32).reshape([1])
    if kind == "modelopt":
        tensors[p + "self_attn.k_proj.k_scale"] = np.array(0.03, dtype=np.float32).reshape([])
        tensors[p + "self_attn.v_proj.v_scale"] = np.array(0.07, dtype=np.float32).reshape([])
    if bad:
        tensors[p + "self_attn.q_proj.weight_scale"] = np.ones((NH * HD + 1, 1), dtype=np.float32)
    save(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
    if not bad:
        save(os.path.join(d, "expected.st"), {k: np.ascontiguousarray(v, dtype=np.float32)
                                                      for k, v in expected.items()})
    fp8 = {"num_bits": 8, "type": "float", "symmetric": True}
    if kind == "modelopt":
        qc = {"quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_quant_algo": "FP8",
              "exclude_modules": ["lm_head"]}
    else:
        qc = {"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
              "config_groups": {"group_0": {"targets": ["Linear"],
                                            "weights": dict(fp8, strategy=kind, dynamic=False),
                                            "input_activations": dict(fp8, strategy="token" if kind == "channel"
                                                                      else "tensor", dynamic=kind == "channel")}},
              "kv_cache_scheme": dict(fp8, strategy="tensor", dynamic=False) if kind == "tensor" else None}
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
write_fp8("fp8-ct-tensor", "tensor")
write_fp8("fp8-ct-channel", "channel")
write_fp8("fp8-modelopt", "modelopt")
write_fp8("bad-fp8-scale", "channel", bad=True)
