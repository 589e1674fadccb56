# Localizes a RoPE/attention mismatch against transformers on the llama fixture (run where torch exists).
import json, struct, sys, torch, transformers
from transformers import AutoModelForCausalLM
from safetensors.torch import load_file
d = sys.argv[1]
m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
g = load_file(d + "/golden.safetensors")
toks = g["tokens_2"][:33].long()[None]
cap = {}
att = m.model.layers[0].self_attn
def pre(mod, args, kwargs): cap["h"] = kwargs.get("hidden_states", args[0] if args else None).detach().clone(); cap["pe"] = kwargs.get("position_embeddings")
att.register_forward_pre_hook(pre, with_kwargs=True)
att.o_proj.register_forward_pre_hook(lambda mod, a: cap.__setitem__("o_in", a[0].detach().clone()))
with torch.no_grad(): out = m(toks).logits[0]
ref = g["logits_2"][:33]
print("eager vs golden rel err per row:", [round(float((out[i]-ref[i]).norm()/ref[i].norm()), 8) for i in range(5)])
m2 = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
with torch.no_grad(): out2 = m2(toks).logits[0]
print("default attn vs golden:", [round(float((out2[i]-ref[i]).norm()/ref[i].norm()), 8) for i in range(5)], m2.config._attn_implementation)
cos, sin = cap["pe"]
print("cos shape", cos.shape, "cos[0,1,:4]", cos[0,1,:4].tolist(), "inv_freq[:4]", m.model.rotary_emb.inv_freq[:4].tolist())
print("rotary type", type(m.model.rotary_emb), getattr(m.model.rotary_emb, "attention_scaling", None))
h = cap["h"][0]
nh, nkv, hd = m.config.num_attention_heads, m.config.num_key_value_heads, m.config.head_dim
q = att.q_proj(h).view(-1, nh, hd); k = att.k_proj(h).view(-1, nkv, hd); v = att.v_proj(h).view(-1, nkv, hd)
half = hd // 2
inv = 1.0 / (m.config.rope_parameters["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
pos = torch.arange(q.shape[0]).float()
ang = pos[:, None] * inv[None]
c, s = ang.cos()[:, None], ang.sin()[:, None]
def rot(x): x0, x1 = x[..., :half], x[..., half:]; return torch.cat([x0 * c - x1 * s, x1 * c + x0 * s], -1)
qr, kr = rot(q), rot(k)
rep = nh // nkv
kr2 = kr.repeat_interleave(rep, 1); v2 = v.repeat_interleave(rep, 1)
sc = torch.einsum("qhd,khd->hqk", qr, kr2) / hd ** 0.5
mask = torch.triu(torch.ones(q.shape[0], q.shape[0], dtype=torch.bool), 1)
sc = sc.masked_fill(mask, float("-inf")).softmax(-1)
o = torch.einsum("hqk,khd->qhd", sc, v2).reshape(q.shape[0], -1)
print("manual attn vs HF o_proj input, rel err rows:", [round(float((o[i]-cap["o_in"][0, i]).norm()/cap["o_in"][0, i].norm()), 8) for i in range(5)])
print("transformers", transformers.__version__, "torch", torch.__version__)
