import sys, torch
from transformers import AutoModelForCausalLM
from safetensors.torch import load_file
d = sys.argv[1]
g = load_file(d + "/golden.safetensors")
for dev in ["cuda"]:
  for tf32 in [False, True]:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval().to(dev)
    toks = g["tokens_2"][:33].long()[None].to(dev)
    with torch.no_grad(): out = m(toks).logits[0].cpu()
    ref = g["logits_2"][:33]
    print(dev, "tf32", tf32, [round(float((out[i]-ref[i]).norm()/ref[i].norm()), 8) for i in range(6)])
    rot = m.model.rotary_emb
    x = torch.zeros(1, 33, 4, device=dev)
    pos = torch.arange(33, device=dev)[None]
    c, s = rot(x, pos)
    inv = 1.0 / (10000.0 ** (torch.arange(0, 32, 2).float() / 32))
    ang = torch.arange(33).float()[:, None] * inv[None]
    print("  cos err vs cpu exact-ish:", float((c[0, :, :16].cpu() - ang.cos()).abs().max()))
