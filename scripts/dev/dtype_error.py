#!/usr/bin/env python3
"""transformers' own float16 and bfloat16 error on each fixture model's golden sequences, the yardstick of the cuda
fixture test (tests/backend_cuda/fixtures_test.cpp): kiln's cuda engine in a dtype passes at <= 1.5 x the error
written here for that dtype (or 5e-3 for float16 / 2e-2 for bfloat16, whichever is larger).

    dtype_error.py [MODEL_DIR ...]     default: every folder of tests/data/models and tests/data/extra that holds a
                                        golden.safetensors; writes MODEL_DIR/dtype_error.json

Run on a machine with a CUDA GPU and torch + transformers (no network: the models are local folders). For each
model, a fresh AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=...) runs on the GPU in float32, float16 and
bfloat16 over exactly the golden cases the test checks (the cases of golden.json whose logits_i is in
golden.safetensors): the whole golden token sequence tokens_i [P + N] in one forward, teacher-forced. Its rows
0 .. P+N-2 are the rows the test compares: context rows 0 .. P-1, and generation row j (the logits token j was
chosen from, j < N) is row P-1+j. The error of a row is the test's metric (tests/common/test_util.h rel_err):
||x - x32|| / ||x32|| over the vocabulary, x32 being the same model's float32 row on the GPU; a dtype's error is
the worst row over every case. The float32 run is also compared with the goldens themselves (made on a CPU): it
must agree within the cpu test's 1e-4, or the goldens and this run do not describe the same model and the script
fails without writing anything for that model.

Deterministic: no sampling; deterministic algorithms (warn only where torch has none), TF32 off, errors written
with 4 significant digits.
"""
import json
import os
import sys

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS; read when CUDA starts

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LOW = {"float16": torch.float16, "bfloat16": torch.bfloat16}
F32_AGREEMENT = 1e-4  # the float32 GPU run against the goldens: the cpu fixture test's tolerance


class ModelError(Exception):
    """A model whose dtype_error.json cannot be written (the others still are)."""


def default_dirs():
    dirs = []
    for group in ("tests/data/models", "tests/data/extra"):
        base = os.path.join(ROOT, group)
        for name in sorted(os.listdir(base)):
            if os.path.isfile(os.path.join(base, name, "golden.safetensors")):
                dirs.append(os.path.join(base, name))
    return dirs


def row_errors(x, ref):
    """Per-row ||x - ref|| / ||ref|| in float64 (a zero row divides by 1), as rel_err in tests/common/test_util.h."""
    x, ref = x.double(), ref.double()
    num = ((x - ref) ** 2).sum(dim=-1)
    den = (ref ** 2).sum(dim=-1)
    return torch.sqrt(num / torch.where(den > 0, den, torch.ones_like(den)))


def sig4(v):
    return float(f"{v:.4g}")


def golden_cases(d):
    meta = json.load(open(os.path.join(d, "golden.json")))
    cases = meta["cases"] if "cases" in meta else meta["samples"]
    tensors = load_file(os.path.join(d, "golden.safetensors"))
    out = []
    for i, c in enumerate(cases):
        if f"logits_{i}" not in tensors:
            continue  # the test checks only the cases with reference logits
        out.append((i, int(c["prompt_len"]), tensors[f"tokens_{i}"].long(), tensors[f"logits_{i}"].float()))
    if not out:
        raise ModelError(f"{d}: no case with reference logits")
    return out


def load(d, dtype, dev):
    """A fresh from_pretrained in `dtype` on `dev` (RoPE's inv_freq in float32, as every golden was made)."""
    return AutoModelForCausalLM.from_pretrained(d, dtype=dtype).to(dev).eval()


def forward_rows(model, tokens, rows, dev):
    """The model's float32 logits of rows 0 .. rows-1 for the whole sequence `tokens` [P + N]."""
    with torch.no_grad():
        logits = model(tokens[None].to(dev)).logits[0, :rows]
    return logits.float()


def measure(d, dev):
    cases = golden_cases(d)
    result_cases = [{"index": i, "prompt_len": P, "rows": int(t.numel()) - 1} for i, P, t, _ in cases]
    m32 = load(d, torch.float32, dev)
    ref = []
    worst32 = 0.0
    for k, (i, P, toks, gold) in enumerate(cases):
        rows = int(toks.numel()) - 1
        x32 = forward_rows(m32, toks, rows, dev)
        e = float(row_errors(x32.cpu(), gold[:rows]).max())
        if e > F32_AGREEMENT:
            raise ModelError(f"{d}: case {i}: float32 on {dev} differs from golden.safetensors by {e:.3g} per row "
                             f"(more than {F32_AGREEMENT}): the goldens were not made from this checkpoint as "
                             f"from_pretrained(dtype=float32) loads it")
        result_cases[k]["float32_vs_golden"] = sig4(e)
        worst32 = max(worst32, e)
        ref.append(x32)
    attn = getattr(m32.config, "_attn_implementation", None)
    del m32
    out = {"model": os.path.relpath(d, ROOT)}
    for name, dt in LOW.items():
        m = load(d, dt, dev)
        worst = 0.0
        for k, (i, P, toks, _) in enumerate(cases):
            x = forward_rows(m, toks, int(toks.numel()) - 1, dev)
            errs = row_errors(x, ref[k])
            r = int(errs.argmax())
            flips = int((x.argmax(dim=-1) != ref[k].argmax(dim=-1)).sum())
            result_cases[k][name] = {"worst": sig4(float(errs[r])), "worst_row": r, "argmax_flips": flips}
            worst = max(worst, float(errs[r]))
        out[name] = sig4(worst)
        del m
    out["float32_vs_golden"] = sig4(worst32)
    out["metric"] = ("worst row of ||x - x32|| / ||x32|| (tests/common/test_util.h rel_err), x32 the same model in "
                     "float32 on the same GPU, rows 0 .. P+N-2 of each golden case with logits, teacher-forced")
    out["cases"] = result_cases
    out["made_with"] = {"script": "scripts/dev/dtype_error.py", "torch": torch.__version__,
                        "transformers": transformers.__version__, "gpu": torch.cuda.get_device_name(dev),
                        "attn_implementation": attn, "rope_inv_freq": "float32"}
    return out


def main(argv):
    if not torch.cuda.is_available():
        raise SystemExit("dtype_error.py: needs a CUDA GPU (transformers' float16/bfloat16 error is measured there)")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_float32_matmul_precision("highest")  # no TF32 in the float32 reference
    dev = torch.device("cuda", 0)
    dirs = [os.path.abspath(a) for a in argv] or default_dirs()
    failed = []
    for d in dirs:
        try:
            r = measure(d, dev)
        except ModelError as e:
            print(f"FAILED {e}", file=sys.stderr)
            failed.append(d)
            continue
        with open(os.path.join(d, "dtype_error.json"), "w") as f:
            json.dump(r, f, indent=1)
            f.write("\n")
        print(f"{r['model']}: float16 {r['float16']:.3g}, bfloat16 {r['bfloat16']:.3g} "
              f"(float32 vs golden {r['float32_vs_golden']:.2g})")
    if failed:
        print(f"dtype_error.py: {len(failed)} of {len(dirs)} models failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
