#!/usr/bin/env bash
# GPU check: runs the GPU tests, compute-sanitizer memcheck over the GPU test binary, and the benchmarks of
# issue 5 with kiln and with the transformers peer; writes one JSON file per run into OUT_DIR.
#
#   scripts/gpu-check.sh OUT_DIR
#
# Needs a prebuilt build folder (KILN_BUILD, default build; binaries in $KILN_BUILD/bin: test_backend_cuda,
# kiln, kiln_gpu_bench), nvidia-smi, compute-sanitizer, and python3 with torch + transformers for the peer.
# PHASES selects parts and their order (default: "tests memcheck bench peer"; also "serve": kiln serve + kiln bench
# --url against in-process kiln bench (bench/gpu/serve_compare.py); "baseline": an earlier commit's
# binaries (BASE_BIN) on the same machine, "ttft": TTFT and the prefill profile only, "profile": the decode
# profiles); PEER_COMPILE=0 skips torch.compile runs, PEERS (names) selects peer runs;
# MEMCHECK_FILTER narrows the memcheck run (a gtest filter). Each JSON holds the GPU name, the commit, the
# command, its exit code and wall time, and the run's own JSON result (or the tail of its log).
set -uo pipefail
OUT=${1:?usage: scripts/gpu-check.sh OUT_DIR}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KILN_BUILD:-$ROOT/build}
BIN=$BUILD/bin
# The decode profile's kernel timeline opens CUPTI at run time: a copy packed beside the binaries, if any.
[ -z "${KILN_CUPTI:-}" ] && [ -f "$BIN/libcupti.so.13" ] && export KILN_CUPTI=$BIN/libcupti.so.13
PHASES=${PHASES:-tests memcheck bench peer}
PEER_COMPILE=${PEER_COMPILE:-1}
MEMCHECK_FILTER=${MEMCHECK_FILTER:-*}
CFG1B=$ROOT/bench/configs/llama-3.2-1b.json
CFG8B=$ROOT/bench/configs/llama-3.1-8b.json
WORK=$(mktemp -d /tmp/kiln-gpu-check-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# cuBLASLt is linked dynamically: the toolkit's, or the one pip installed beside torch.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, "cu13", "lib") for p in nvidia.__path__))' 2>/dev/null); do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
# The commit: from the carried binaries' stamp (bench/gpu/pack.sh), else from git.
COMMIT=$(cat "$ROOT/.gpu-carry/commit" 2>/dev/null || git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "gpu-check: $GPU, commit $COMMIT, phases: $PHASES"
# The clocks and power limit beside the results: lent machines of one model differ at latency-bound work.
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem,clocks.sm,clocks.mem,power.limit,temperature.gpu \
  --format=csv >"$OUT/gpu_info.csv" 2>/dev/null || true

UTIL=$ROOT/bench/gpu/gpu_check_util.py

# record NAME TIMEOUT_S CMD...: runs CMD, writes $OUT/NAME.json (its result: the last stdout line that is JSON).
record() {
  local name=$1 limit=$2
  shift 2
  local t0 t1 rc
  t0=$(date +%s.%N)
  if declare -F "$1" >/dev/null; then
    LIMIT=$limit "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"  # a function: it applies the limit itself
  else
    timeout "$limit" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  fi
  rc=$?
  t1=$(date +%s.%N)
  python3 "$UTIL" record "$OUT/$name.json" "$name" "$GPU" "$COMMIT" "$rc" "$t0" "$t1" "$WORK/$name.out" \
    "$WORK/$name.err" "$*"
  return $rc
}

# The GPU tests: the gtest report summarized (full log beside the JSON).
run_tests() {
  timeout "$LIMIT" "$BIN/test_backend_cuda" --gtest_output="json:$WORK/gtest.json" >"$OUT/gpu_tests.log" 2>&1
  local rc=$?
  tail -30 "$OUT/gpu_tests.log" >&2
  python3 "$UTIL" gtest "$WORK/gtest.json"
  return $rc
}

run_memcheck() {
  timeout "$LIMIT" compute-sanitizer --tool memcheck --error-exitcode 86 --print-limit 20 \
    "$BIN/test_backend_cuda" --gtest_filter="$MEMCHECK_FILTER" >"$WORK/memcheck.txt" 2>&1
  local rc=$?
  tail -25 "$WORK/memcheck.txt" >&2
  python3 "$UTIL" memcheck "$WORK/memcheck.txt" "$MEMCHECK_FILTER" $rc
  return $rc
}

phase_tests() { record gpu_tests 900 run_tests; }
phase_memcheck() { record memcheck 900 run_memcheck; }

# The synthetic benchmark engines (E1: 1B shape, E8: 8B shape), each built once per gpu-check run (the build is
# itself a benchmark: its JSON records the time, autotuning included).
E1=$WORK/llama-3.2-1b.engine
E8=$WORK/llama-3.1-8b.engine
engine_1b() {
  [ -d "$E1" ] || record build_1b 300 "$BIN/kiln" build --synthetic "$CFG1B" --target cuda --dtype bfloat16 --output "$E1" \
    --max-batch-size 8 --max-seq-len 4096 --max-num-tokens 2048
  cp "$E1/engine.json" "$OUT/engine_1b.json" 2>/dev/null  # its tactics
}
engine_8b() {
  [ -d "$E8" ] || record build_8b 300 "$BIN/kiln" build --synthetic "$CFG8B" --target cuda --dtype bfloat16 --output "$E8" \
    --max-batch-size 512 --max-seq-len 4096 --max-num-tokens 8192
  cp "$E8/engine.json" "$OUT/engine_8b.json" 2>/dev/null
}

# kiln bench (the Executor, the product path) as a record: its JSON on stdout, its table on stderr.
kiln_bench() {
  local j
  j=$(mktemp "$WORK/bench-XXXXXX.json")
  timeout "$LIMIT" "$BIN/kiln" bench --json-out "$j" "$@" >&2 || return $?
  python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$j"
}

# The figures of record, all through kiln bench: batch-1 decode (1B, 8B: time per output token of requests run one
# at a time), TTFT of a 2,048-token prompt (8B; the first request's own TTFT is in the JSON too), and 2,000 requests
# at once (8B).
phase_bench() {
  engine_1b
  engine_8b
  record copy_bw 60 "$BIN/kiln_gpu_bench" copy-bw
  record decode_1b 300 kiln_bench --engine "$E1" --num-requests 5 --concurrency 1 --input-len 128 --output-len 256
  record decode_8b 300 kiln_bench --engine "$E8" --num-requests 5 --concurrency 1 --input-len 128 --output-len 256
  record ttft_8b 300 kiln_bench --engine "$E8" --num-requests 6 --concurrency 1 --input-len 2048 --output-len 1
  record throughput_8b 600 kiln_bench --engine "$E8" --num-requests 2000 --input-len 128 --output-len 128
  record sampling 60 "$BIN/kiln_gpu_bench" sampling --reps 5
  record profile_1b 120 "$BIN/kiln_gpu_bench" profile --engine "$E1" --prompt-len 128
  record profile_8b 120 "$BIN/kiln_gpu_bench" profile --engine "$E8" --prompt-len 128
}

# Before and after in one run: the binaries of an earlier commit (BASE_BIN; bench/gpu/device-run.sh unpacks
# .gpu-carry/base.tar.xz there) on engines their own kiln builds: that commit's private decode loop and scheduler
# (kiln_gpu_bench decode / ttft / throughput, where it had them) and its kiln bench.
phase_baseline() {
  [ -x "${BASE_BIN:-}/kiln" ] || { echo "gpu-check: no baseline binaries (BASE_BIN)" >&2; return 1; }
  local B1=$WORK/base-1b.engine B8=$WORK/base-8b.engine
  record base_build_1b 300 "$BASE_BIN/kiln" build --synthetic "$CFG1B" --target cuda --dtype bfloat16 --output "$B1" \
    --max-batch-size 8 --max-seq-len 4096 --max-num-tokens 2048
  record base_build_8b 300 "$BASE_BIN/kiln" build --synthetic "$CFG8B" --target cuda --dtype bfloat16 --output "$B8" \
    --max-batch-size 512 --max-seq-len 4096 --max-num-tokens 8192
  record base_gpu_bench_decode_1b 300 "$BASE_BIN/kiln_gpu_bench" decode --engine "$B1" --prompt-len 128 --gen 256 --reps 3
  record base_gpu_bench_decode_8b 300 "$BASE_BIN/kiln_gpu_bench" decode --engine "$B8" --prompt-len 128 --gen 256 --reps 3
  record base_gpu_bench_ttft_8b 300 "$BASE_BIN/kiln_gpu_bench" ttft --engine "$B8" --prompt-len 2048 --reps 5
  record base_gpu_bench_throughput_8b 600 "$BASE_BIN/kiln_gpu_bench" throughput --engine "$B8" --requests 2000 \
    --input 128 --output 128
  BIN=$BASE_BIN record base_decode_1b 300 kiln_bench --engine "$B1" --num-requests 5 --concurrency 1 --input-len 128 \
    --output-len 256
  BIN=$BASE_BIN record base_ttft_8b 300 kiln_bench --engine "$B8" --num-requests 6 --concurrency 1 --input-len 2048 \
    --output-len 1
}

# The decode profiles only (each op timed alone, both shapes).
phase_profile() {
  engine_1b
  engine_8b
  record profile_1b 120 "$BIN/kiln_gpu_bench" profile --engine "$E1" --prompt-len 128
  record profile_8b 120 "$BIN/kiln_gpu_bench" profile --engine "$E8" --prompt-len 128
}

# Prefill only: TTFT and the prefill profile of the 8B shape.
phase_ttft() {
  engine_8b
  record ttft_8b 300 kiln_bench --engine "$E8" --num-requests 6 --concurrency 1 --input-len 2048 --output-len 1
  record profile_8b_prefill 120 "$BIN/kiln_gpu_bench" profile --engine "$E8" --prompt-len 2048 --mode prefill
}

phase_peer() {
  PEER=$ROOT/bench/gpu/peer_hf.py
  peer() {  # peer NAME LIMIT ARGS...: the transformers peer (bench/gpu/peer_hf.py), result JSON on stdout
    local name=$1 limit=$2
    shift 2
    [ -z "${PEERS:-}" ] || [[ " $PEERS " == *" $name "* ]] || return 0
    KILN_COMMIT=$COMMIT record "$name" "$limit" python3 "$PEER" --out "$WORK/$name.peer.json" "$@"
  }
  peer peer_decode_1b_eager 300 --shape llama-3.2-1b --mode eager --workload decode --input-len 128 --output-len 256
  peer peer_decode_8b_eager 300 --shape llama-3.1-8b --mode eager --workload decode --input-len 128 --output-len 256
  peer peer_ttft_8b 300 --shape llama-3.1-8b --mode eager --workload ttft --input-len 2048
  peer peer_throughput_8b 420 --shape llama-3.1-8b --mode eager --workload throughput --requests 2000 --batch 256 \
    --input-len 128 --output-len 128
  if [ "$PEER_COMPILE" = 1 ]; then  # static cache + torch.compile: slow to compile, so last
    peer peer_decode_1b_compile 300 --shape llama-3.2-1b --mode compile --workload decode --input-len 128 --output-len 256
    peer peer_decode_8b_compile 300 --shape llama-3.1-8b --mode compile --workload decode --input-len 128 --output-len 256
  fi
}

# kiln serve on the 8B engine, measured over HTTP with kiln bench --url, then the same kiln bench arguments in
# process (after the server has exited, so that both have the GPU alone): 2,000 x 128/128 at once (output tok/s
# within 3%) and one request at a time (TTFT p50 at most 1 ms higher). serve_vs_inprocess.json compares them.
phase_serve() {
  engine_8b
  # The synthetic engine has no tokenizer: a byte-level one of its vocabulary's size, so the server detokenizes every
  # generated token as it would Llama 3's.
  python3 "$ROOT/bench/gpu/synthetic_tokenizer.py" \
    "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["vocab_size"])' "$CFG8B")" "$E8"
  local tp="--num-requests 2000 --input-len 128 --output-len 128"
  local low="--num-requests 50 --concurrency 1 --input-len 128 --output-len 32"
  rm -f "$WORK/serve.port"
  "$BIN/kiln" serve --engine "$E8" --port 0 --port-file "$WORK/serve.port" --model-name kiln-8b --max-queued 4096 \
    >"$OUT/serve.log" 2>&1 &
  local pid=$! i
  for i in $(seq 600); do [ -f "$WORK/serve.port" ] || ! kill -0 $pid 2>/dev/null && break; sleep 0.5; done
  if [ -f "$WORK/serve.port" ]; then
    local url=http://127.0.0.1:$(cat "$WORK/serve.port")
    record serve_ttft_8b 300 kiln_bench --engine "$E8" --url "$url" --model-name kiln-8b $low
    record serve_throughput_8b 600 kiln_bench --engine "$E8" --url "$url" --model-name kiln-8b $tp
  fi
  kill -TERM $pid 2>/dev/null
  wait $pid
  echo "kiln serve exited $?" >>"$OUT/serve.log"
  record inproc_ttft_8b 300 kiln_bench --engine "$E8" $low
  record inproc_throughput_8b 600 kiln_bench --engine "$E8" $tp
  python3 "$ROOT/bench/gpu/serve_compare.py" "$OUT" | tee "$OUT/serve_vs_inprocess.json"
}

for phase in $PHASES; do
  declare -F "phase_$phase" >/dev/null || { echo "gpu-check: unknown phase '$phase'" >&2; exit 2; }
  "phase_$phase"
done
echo "gpu-check: results in $OUT"
ls "$OUT"
