"""kiln serve + kiln bench --url against in-process kiln bench (scripts/gpu-check.sh, phase serve).

Reads the records serve_{throughput,ttft}_8b.json and inproc_{throughput,ttft}_8b.json in OUT_DIR and prints one JSON
object: output tok/s over HTTP as a fraction of in-process (target >= 0.97 at 2,000 x 128/128) and TTFT p50 over
HTTP minus in-process at low load (target <= 1 ms).
"""
import json
import os
import sys


def result(out, name):
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        return None
    rec = json.load(open(path))
    return rec["result"] if rec.get("exit_code") == 0 else None


def main():
    out = sys.argv[1]
    st, it = result(out, "serve_throughput_8b"), result(out, "inproc_throughput_8b")
    sl, il = result(out, "serve_ttft_8b"), result(out, "inproc_ttft_8b")
    rep = {"throughput_target": ">= 0.97 of in-process output tok/s", "ttft_target": "p50 <= in-process + 1 ms"}
    if st and it:
        s, i = st["results"]["output_tokens_per_s"], it["results"]["output_tokens_per_s"]
        rep.update(serve_output_tok_s=s, inproc_output_tok_s=i, throughput_ratio=s / i, throughput_ok=s >= 0.97 * i,
                   serve_failed=st["results"]["failed_requests"], inproc_failed=it["results"]["failed_requests"])
    if sl and il:
        s, i = sl["results"]["ttft_ms"]["p50"], il["results"]["ttft_ms"]["p50"]
        rep.update(serve_ttft_p50_ms=s, inproc_ttft_p50_ms=i, ttft_delta_ms=s - i, ttft_ok=s - i <= 1.0,
                   serve_itl_p50_ms=sl["results"]["itl_ms"]["p50"], inproc_itl_p50_ms=il["results"]["itl_ms"]["p50"])
    rep["complete"] = all(x is not None for x in (st, it, sl, il))
    print(json.dumps(rep))


if __name__ == "__main__":
    main()
