#!/usr/bin/env python3
"""Reference logits of kiln-quantized checkpoints, computed by transformers (issue 16, item 4).

For each checkpoint tests/data/quant/NAME (config.json + rank0.safetensors, written by kiln quantize through
scripts/dev/make_quant_checkpoints.sh from the fixture tests/data/models/MODEL), this script

  1. reads the kiln checkpoint with its own safetensors parser (not kiln's reader) and dequantizes every quantized
     linear weight following the format of docs/ARCHITECTURE.md ("Quantization"): W[n, k] = (q[n, k] - zero) * scale
     in float32, scale per tensor / channel / group of G inputs, int4 packed two per byte along K, low nibble first;
  2. writes those weights (and the checkpoint's float tensors: norms, embeddings, which SmoothQuant may have
     rescaled) back under the Hugging Face names into a temporary copy of the fixture, float32, and loads it with
     AutoModelForCausalLM.from_pretrained(dtype=float32) on the CPU;
  3. replaces each quantized nn.Linear by one that multiplies its input by pre_quant_scale (AWQ) and fake-quantizes
     it with torch's own casts: fp8 e4m3 per tensor with the static input_scale, or per token (scale absmax / 448,
     1 for a zero row): (x / s).clamp(-448, 448).to(torch.float8_e4m3fn).float() * s; int8 per token (absmax / 127):
     (x / s).round().clamp(-128, 127).to(torch.int8).float() * s (torch.round rounds half to even);
  4. fake-quantizes the keys and values (after RoPE, as a KV cache stores them) with the per-layer scales of a
     quantized KV cache, through an attention function registered with transformers' AttentionInterface that then
     calls its sdpa attention;
  5. stores float32 logits for every position of two sequences of the fixture's golden.safetensors (tokens_1,
     tokens_2) in OUT/NAME.safetensors (logits_1, logits_2, tokens_1, tokens_2, and first_unsafe_1/2: the first
     position where a quantized value lies within 1e-5 (relative) of a rounding boundary, so that two float32
     implementations may round it differently; see MARGIN; margins_1/2: that smallest relative distance per
     position, 1 where nothing was quantized), and OUT/versions.json with the
     sha256 of each checkpoint's rank0.safetensors (the checkpoints are not tracked: the test regenerates them with
     kiln quantize and checks that it made the same bytes).

Run from the repository root on a machine with torch and transformers (everything on the CPU, float32):
    python3 scripts/dev/quant_reference.py --out $OUT/quant
"""
import argparse
import copy
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import AttentionInterface, AutoModelForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I8": torch.int8, "U8": torch.uint8,
          "F8_E4M3": torch.float8_e4m3fn, "I32": torch.int32, "I64": torch.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, v in header.items():
        b0, b1 = v["data_offsets"]
        raw = torch.frombuffer(bytearray(data[b0:b1]), dtype=torch.uint8) if b1 > b0 else torch.empty(0, dtype=torch.uint8)
        out[name] = raw.view(DTYPES[v["dtype"]]).reshape(v["shape"]).clone()
    return out, meta


def unpack_int4(u8):
    """[..., K / 2] bytes -> [..., K] signed values, element 2j in the low nibble of byte j."""
    lo = (u8 & 0xF).to(torch.int16)
    hi = (u8 >> 4).to(torch.int16)
    lo = torch.where(lo >= 8, lo - 16, lo)
    hi = torch.where(hi >= 8, hi - 16, hi)
    return torch.stack([lo, hi], dim=-1).reshape(*u8.shape[:-1], u8.shape[-1] * 2)


def dequantize(t, module, quant):
    """The float32 weight [lead..., N, K] of a quantized kiln linear layer."""
    q = t[module + ".weight"]
    scale = t[module + ".weight_scale"].float()
    q = unpack_int4(q) if q.dtype == torch.uint8 else q
    qf = q.float()
    group = quant["group_size"]
    algo = quant["quant_algo"]
    K = qf.shape[-1]
    if algo == "FP8":  # per tensor: [lead..., 1]
        s = scale.unsqueeze(-1)
    elif group:  # per group: [lead..., N, K / G]
        s = scale.repeat_interleave(group, dim=-1)
    else:  # per channel: [lead..., N]
        s = scale.unsqueeze(-1)
    assert s.shape[-1] in (1, K)
    if module + ".weight_zero" in t:
        z = t[module + ".weight_zero"].float()
        z = z.repeat_interleave(group, dim=-1) if group else z.unsqueeze(-1)
        qf = qf - z
    return qf * s


def act_mode(algo):
    return {"FP8": "fp8_static", "FP8_PER_CHANNEL_PER_TOKEN": "fp8_token",
            "W8A8_SQ_PER_CHANNEL_PER_TOKEN": "int8_token"}.get(algo)


# Rounding margins. Two float32 implementations (kiln's and this one) agree on every value only to ~1e-7
# relative: a value whose quantized code depends on that noise (closer than MARGIN, relative, to a rounding
# boundary) may round one way in one and the other way in the other, and every later position sees the difference
# through the KV cache. MARGINS[pos] is the smallest relative distance to a boundary of any value quantized at that
# position in the current forward; the test compares only the rows before the first position below MARGIN.
MARGIN = 1e-5
MARGINS = []


def note_margins(v, fp8, position_dim, positions=None):
    """v: values about to be rounded (in units of their scale); positions along `position_dim` (or, for rows of a
    2-D v, the positions given)."""
    a = v.abs()
    if fp8:
        q = v.clamp(-448.0, 448.0).to(torch.float8_e4m3fn).to(torch.float32)
        e = torch.floor(torch.log2(q.abs().clamp(min=2.0 ** -6)))
        half_step = torch.pow(2.0, e - 3) / 2  # e4m3: 3 mantissa bits; subnormal step 2^-9
        # Just below a power of two the step is half as large (the boundary below q is closer).
        below = (q.abs() == torch.pow(2.0, e)) & (v.abs() < q.abs()) & (q.abs() > 2.0 ** -6)
        dist = torch.where(below, half_step / 2, half_step) - (v - q).abs()
        saturated = a >= 448.0
    else:
        dist = 0.5 - (v - v.round()).abs()
        saturated = a >= 127.5
    rel = torch.where(saturated | (a == 0), torch.full_like(a, float("inf")), dist / a.clamp(min=1.0))
    dims = [d for d in range(rel.dim()) if d != position_dim % rel.dim()]
    per_pos = rel.amin(dim=dims) if dims else rel
    where = positions.tolist() if positions is not None else range(per_pos.numel())
    for i, m in zip(where, per_pos.tolist()):
        MARGINS[i] = min(MARGINS[i], m)


def fake_quant(x, mode, input_scale, positions=None):
    if mode is None:
        return x
    if mode == "fp8_static":
        s = input_scale
    else:
        qmax = 448.0 if mode == "fp8_token" else 127.0
        amax = x.abs().amax(dim=-1, keepdim=True)
        s = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    v = x / s
    note_margins(v, mode.startswith("fp8"), -2, positions)  # x: [batch, positions, K], or MoE rows [n, K]
    if mode.startswith("fp8"):
        q = v.clamp(-448.0, 448.0).to(torch.float8_e4m3fn).to(x.dtype)
    else:
        q = v.round().clamp(-128.0, 127.0).to(torch.int8).to(x.dtype)
    return q * s


class FakeQuantLinear(torch.nn.Module):
    def __init__(self, linear, mode, input_scale, pre_quant_scale):
        super().__init__()
        self.linear = linear
        self.mode = mode
        self.input_scale = input_scale
        self.pre_quant_scale = pre_quant_scale

    def forward(self, x):
        if self.pre_quant_scale is not None:
            x = x * self.pre_quant_scale
        return F.linear(fake_quant(x, self.mode, self.input_scale), self.linear.weight, self.linear.bias)


KV_SCALES = {}  # layer index -> (k scale, v scale, "fp8" | "int8"), for the attention function below


def fake_quant_kv(x, scale, kind):
    v = x / scale
    note_margins(v, kind == "FP8", -2)  # [batch, kv heads, positions, head dim]
    if kind == "FP8":
        return v.clamp(-448.0, 448.0).to(torch.float8_e4m3fn).to(x.dtype) * scale
    return v.round().clamp(-128.0, 127.0).to(torch.int8).to(x.dtype) * scale


def kv_quant_attention(module, query, key, value, attention_mask, **kwargs):
    ks, vs, kind = KV_SCALES[module.layer_idx]
    return sdpa_attention_forward(module, query, fake_quant_kv(key, ks, kind), fake_quant_kv(value, vs, kind),
                                  attention_mask, **kwargs)


AttentionInterface.register("kiln_kv_quant", kv_quant_attention)


class FakeQuantMoe(torch.nn.Module):
    """Mixtral's sparse MoE written out (softmax over the router logits, top-k, renormalized weights, SiLU-gated
    experts) so that each expert's inputs can be fake-quantized; returns what the replaced block returns."""

    def __init__(self, block, router, gate_up, down, top_k, mode):
        super().__init__()
        self.block, self.router, self.gate_up, self.down, self.top_k, self.mode = block, router, gate_up, down, top_k, mode

    def forward(self, hidden):
        orig = self.block(hidden)
        shape = hidden.shape
        x = hidden.reshape(-1, shape[-1])
        probs = torch.softmax(F.linear(x, self.router.to(x.dtype)), dim=-1)
        w, idx = torch.topk(probs, self.top_k, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(x)
        I = self.gate_up.shape[1] // 2
        for e in range(self.gate_up.shape[0]):
            rows, slot = torch.where(idx == e)
            if rows.numel() == 0:
                continue
            xe = fake_quant(x[rows], self.mode, None, rows)  # batch 1: row r of x is position r
            gu = F.linear(xe, self.gate_up[e].to(x.dtype))
            act = F.silu(gu[:, :I]) * gu[:, I:]
            y = F.linear(fake_quant(act, self.mode, None, rows), self.down[e].to(x.dtype))
            out.index_add_(0, rows, y * w[rows, slot].unsqueeze(-1))
        out = out.reshape(shape)
        return (out,) + tuple(orig[1:]) if isinstance(orig, tuple) else out


def hf_tensors(t, cfg, quant, hf_cfg):
    """kiln tensors -> {HF checkpoint name: float32 tensor}, and the quantized HF linear modules' parameters."""
    L, nh, nkv, hd = cfg["num_layers"], cfg["num_heads"], cfg["num_kv_heads"], cfg["head_dim"]
    I = cfg["intermediate_size"]
    excluded = quant.get("exclude_modules") or []
    out, linears, moes = {}, {}, {}

    def weight(module):
        if module + ".weight_scale" in t:
            return dequantize(t, module, quant), True
        return t[module + ".weight"].float(), False

    def params(module, hf_modules, rows=None):
        if module + ".weight_scale" not in t:
            return
        p = {"mode": act_mode(quant["quant_algo"]),
             "input_scale": t[module + ".input_scale"].float() if module + ".input_scale" in t else None,
             "pre_quant_scale": t[module + ".pre_quant_scale"].float() if module + ".pre_quant_scale" in t else None}
        for m in hf_modules:
            linears[m] = p

    out["model.embed_tokens.weight"] = t["embed.weight"].float()
    out["model.norm.weight"] = t["final_norm.weight"].float()
    if "lm_head.weight" in t or "lm_head.weight_scale" in t:
        out["lm_head.weight"], _ = weight("lm_head")
        params("lm_head", ["lm_head"])
    for i in range(L):
        k = f"layers.{i}."
        h = f"model.layers.{i}."
        out[h + "input_layernorm.weight"] = t[k + "input_norm.weight"].float()
        out[h + "post_attention_layernorm.weight"] = t[k + "post_norm.weight"].float()
        qkv, _ = weight(k + "attention.qkv")
        a = h + "self_attn."
        out[a + "q_proj.weight"] = qkv[: nh * hd]
        out[a + "k_proj.weight"] = qkv[nh * hd:(nh + nkv) * hd]
        out[a + "v_proj.weight"] = qkv[(nh + nkv) * hd:]
        if k + "attention.qkv.bias" in t:
            b = t[k + "attention.qkv.bias"].float()
            out[a + "q_proj.bias"] = b[: nh * hd]
            out[a + "k_proj.bias"] = b[nh * hd:(nh + nkv) * hd]
            out[a + "v_proj.bias"] = b[(nh + nkv) * hd:]
        params(k + "attention.qkv", [a + "q_proj", a + "k_proj", a + "v_proj"])
        out[a + "o_proj.weight"], _ = weight(k + "attention.dense")
        params(k + "attention.dense", [a + "o_proj"])
        if cfg.get("num_experts", 0) > 0:
            m = h + "block_sparse_moe."
            out[m + "gate.weight"] = t[k + "moe.router.weight"].float()
            gu, _ = weight(k + "moe.gate_up")
            dn, _ = weight(k + "moe.down")
            for e in range(cfg["num_experts"]):
                out[m + f"experts.{e}.w1.weight"] = gu[e, :I]
                out[m + f"experts.{e}.w3.weight"] = gu[e, I:]
                out[m + f"experts.{e}.w2.weight"] = dn[e]
            if act_mode(quant["quant_algo"]) is not None and k + "moe.gate_up.weight_scale" in t:
                moes[i] = (t[k + "moe.router.weight"].float(), gu, dn, cfg["experts_top_k"])
        else:
            m = h + "mlp."
            gu, _ = weight(k + "mlp.gate_up")
            out[m + "gate_proj.weight"] = gu[:I]
            out[m + "up_proj.weight"] = gu[I:]
            params(k + "mlp.gate_up", [m + "gate_proj", m + "up_proj"])
            out[m + "down_proj.weight"], _ = weight(k + "mlp.down")
            params(k + "mlp.down", [m + "down_proj"])
    return {n: v.clone().contiguous() for n, v in out.items()}, linears, moes  # no shared storage (save_file)


def reference(name, model, out_dir):
    ck = os.path.join(ROOT, "tests/data/quant", name)
    fixture = os.path.join(ROOT, "tests/data/models", model)
    cfg = json.load(open(os.path.join(ck, "config.json")))
    quant = cfg["quantization"]
    t, meta = read_safetensors(os.path.join(ck, "rank0.safetensors"))
    if any(v.dtype == torch.uint8 for v in t.values()):
        assert meta.get("kiln.int4_packing") == "int4x2-low-first", meta
    hf_cfg = json.load(open(os.path.join(fixture, "config.json")))
    tensors, linears, moes = hf_tensors(t, cfg, quant, hf_cfg)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(fixture, "config.json"), tmp)
        save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        kv = quant.get("kv_cache_quant_algo")
        kwargs = {"attn_implementation": "kiln_kv_quant"} if kv else {}
        m = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32, **kwargs).eval()
    # Every weight came from the checkpoint written above (no tied or missing parameter left at random).
    sd = m.state_dict()
    for n, v in tensors.items():
        if n in sd:
            assert torch.equal(sd[n], v), n
    KV_SCALES.clear()
    if kv:
        for i in range(cfg["num_layers"]):
            s = t[f"layers.{i}.attention.kv_cache_scale"].float()
            KV_SCALES[i] = (s[0], s[1], kv)
    mods = dict(m.named_modules())
    for hf_name, p in linears.items():
        parent_name, child = hf_name.rsplit(".", 1) if "." in hf_name else ("", hf_name)
        parent = mods[parent_name] if parent_name else m
        setattr(parent, child, FakeQuantLinear(getattr(parent, child), p["mode"], p["input_scale"],
                                               p["pre_quant_scale"]))
    for i, (router, gu, dn, top_k) in moes.items():
        layer = m.model.layers[i]
        attr = "block_sparse_moe" if hasattr(layer, "block_sparse_moe") else "mlp"
        setattr(layer, attr, FakeQuantMoe(getattr(layer, attr), router, gu, dn, top_k, act_mode(quant["quant_algo"])))
    golden, _ = read_safetensors(os.path.join(fixture, "golden.safetensors"))
    m64 = copy.deepcopy(m).to(torch.float64)
    logits64_runs = []
    result = {}
    with torch.no_grad():
        for i in (1, 2):
            ids = golden[f"tokens_{i}"].to(torch.int64)
            MARGINS[:] = [float("inf")] * ids.numel()
            logits = m(ids.unsqueeze(0)).logits[0].float()
            unsafe = [p for p, v in enumerate(MARGINS) if v < MARGIN]
            result[f"first_unsafe_{i}"] = torch.tensor([unsafe[0] if unsafe else ids.numel()], dtype=torch.int32)
            result[f"margins_{i}"] = torch.tensor([min(v, 1.0) for v in MARGINS], dtype=torch.float32)
            result[f"tokens_{i}"] = golden[f"tokens_{i}"].to(torch.int32).contiguous()
            result[f"logits_{i}"] = logits.contiguous()
            # The same forward in float64 (weights, activations, attention; the same checkpoint and scales, the
            # same fake quantization): transformers' own float32 error is logits_i against logits64_i. Where a
            # rounding decision lies within float32 noise at every position (tiny-code fp8), the test compares
            # kiln's error against logits64_i with that instead of comparing rows before the first tie.
            saved = MARGINS[:]
            logits64_runs.append((i, m64(ids.unsqueeze(0)).logits[0].float().contiguous()))
            MARGINS[:] = saved
    for i, l64 in logits64_runs:
        result[f"logits64_{i}"] = l64
    save_file(result, os.path.join(out_dir, name + ".safetensors"))
    print(f"{name}: {len(linears)} fake-quantized linear modules, kv {kv}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--names", nargs="*", help="checkpoints of tests/data/quant (default: all)")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.out, exist_ok=True)
    names = a.names or sorted(d for d in os.listdir(os.path.join(ROOT, "tests/data/quant"))
                              if os.path.isdir(os.path.join(ROOT, "tests/data/quant", d)))
    failed, sums = [], {}
    for name in names:
        with open(os.path.join(ROOT, "tests/data/quant", name, "rank0.safetensors"), "rb") as f:
            sums[name] = hashlib.sha256(f.read()).hexdigest()
        model = next(m for m in ("tiny-code", "llama", "qwen2", "mixtral") if name.startswith(m + "-"))
        try:
            reference(name, model, a.out)
        except Exception as e:  # keep going: one format's failure must not lose the others
            import traceback
            traceback.print_exc()
            failed.append(name)
    json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "failed": failed,
               "rank0_sha256": sums},
              open(os.path.join(a.out, "versions.json"), "w"), indent=1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
