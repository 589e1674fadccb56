#!/usr/bin/env bash
# Builds the libFuzzer tokenizer target with clang (ASan + UBSan) in build-fuzz/ and runs it.
#   scripts/fuzz-tokenizer.sh [seconds]     (default 600)
# Exit status 0: no crash, no sanitizer report, every round-trip property held for the whole run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-600}"
bash "$root/scripts/fetch-tokenizers.sh" >/dev/null
command -v clang++ >/dev/null || { echo "fuzz-tokenizer: clang++ is not installed" >&2; exit 1; }
build="$root/build-fuzz"
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_FUZZ=ON \
    -DKILN_CUDA=OFF >/dev/null
fi
cmake --build "$build" -j2 --target tokenizer_fuzz
corpus="$build/fuzz-corpus/tokenizer"
mkdir -p "$corpus"
# Seed: the golden texts, once per tokenizer selector byte.
python3 - "$root/tests/data/tokenizers/tokenizer_golden.json" "$corpus" <<'PY'
import json, sys, hashlib, os
cases = json.load(open(sys.argv[1]))["cases"]
for c in cases:
    for sel in range(10):
        data = bytes([sel]) + c["text"].encode()
        open(os.path.join(sys.argv[2], hashlib.sha1(data).hexdigest()), "wb").write(data)
PY
cd "$build"
"$build/bin/tokenizer_fuzz" -max_total_time="$secs" -max_len=2048 -timeout=30 -rss_limit_mb=4096 \
  -print_final_stats=1 "$corpus"
