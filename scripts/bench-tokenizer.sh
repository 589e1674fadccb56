#!/usr/bin/env bash
# Single-thread encode throughput (MB/s) of kiln's tokenizers and of the Rust `tokenizers` library (through its
# Node binding, npm @anush008/tokenizers) on the same deterministic ~4 MB of mixed text (English prose, code,
# CJK, emoji, numbers, whitespace runs), document by document, without special tokens. Also checks that both
# produce the same ids (a fingerprint of all ids). Writes bench/results/tokenizer-encode.json.
#
#   scripts/bench-tokenizer.sh [repeat]     (default 5 timed passes after one warm-up pass; median reported)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
repeat="${1:-5}"
build="${BUILD:-$root/build}"
work="$build/bench-tokenizer"
node_dir="$root/third_party/tokenizers/rust-node"   # git-ignored
mkdir -p "$work" "$root/bench/results"

bash "$root/scripts/fetch-tokenizers.sh" >/dev/null
command -v node >/dev/null || { echo "bench-tokenizer: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "bench-tokenizer: npm is not installed" >&2; exit 1; }

# The Rust library's Node binding, pinned.
if [ ! -f "$node_dir/node_modules/@anush008/tokenizers-linux-x64-gnu/package.json" ]; then
  mkdir -p "$node_dir"
  echo '{"name": "kiln-bench-rust-tokenizers", "private": true}' >"$node_dir/package.json"
  (cd "$node_dir" && npm install --silent --no-audit --no-fund \
     @anush008/tokenizers@0.6.0 @anush008/tokenizers-linux-x64-gnu@0.6.0)
fi

# BENCH_BIN: an already built tokenizer_bench to use instead of building one in $build.
bench_bin="${BENCH_BIN:-$build/bin/tokenizer_bench}"
if [ -z "${BENCH_BIN:-}" ]; then
  [ -f "$build/build.ninja" ] || cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j2 --target tokenizer_bench >/dev/null
fi

# Deterministic corpus: a JSON array of ~1000 documents, ~4 MB in all.
python3 - "$work/corpus.json" <<'PY'
import json, sys
state = 12345
def rnd(n):
    global state
    state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    return (state >> 33) % n
def pick(xs): return xs[rnd(len(xs))]
words = ("the of and to in is was that for it with as his on be at by had are but from or have an they which one "
         "you were her all she there would their we him been has when who will more no if out so said what up its "
         "about into than them can only other new some could time these two may then do first any my now such like "
         "our over man me even most made after also did many before must through back years where much your way "
         "well down should because each just those people how too little state good very make world still own see "
         "men work long get here between both life being under never day same another know while last might us "
         "great old year off come since against go came right used take three model token engine inference kernel "
         "don't it's we'll they're I've couldn't naïve café résumé Ångström Straße").split()
zh = "今天主要是结合理论进一步熟悉的内容多卡并行通过参数来控制张量程度我们模型推理引擎中文字符测试数据分词器性能比较速度快慢语言处理人工智能计算机科学技术发展"
ja = "これは日本語のテキストですカタカナとひらがなを混ぜた文章トークナイザーの速度を測ります"
emoji = ["😀", "🚀", "👍🏽", "🎉", "❤️", "👨‍👩‍👧‍👦", "🇯🇵", "✨", "🔥", "🤖", "©", "®", "™", "∑", "∫", "√"]
def prose():
    out = []
    for _ in range(3 + rnd(6)):
        s = [pick(words) for _ in range(6 + rnd(14))]
        s[0] = s[0].capitalize()
        out.append(" ".join(s) + pick([".", ".", "!", "?", ";", ":"]))
    return " ".join(out)
def code():
    lines = []
    ind = 0
    for _ in range(5 + rnd(20)):
        k = rnd(6)
        name = pick(["x", "value", "tokens", "self.cache", "result", "n_heads", "kv_len", "buf"])
        if k == 0: lines.append(" " * ind + f"def {pick(['forward', 'encode', 'merge_pairs', 'run'])}({name}, {pick(['a', 'b', 'c'])}=None):"); ind += 4
        elif k == 1: lines.append(" " * ind + f"for i in range({rnd(1000)}):"); ind = min(ind + 4, 16)
        elif k == 2: lines.append(" " * ind + f"{name} = {name}[{rnd(64)}:{rnd(64)}] * {rnd(10000) / 100} + 0x{rnd(65536):04x}")
        elif k == 3: lines.append(" " * ind + f"if ({name} != {rnd(99)}) {{ return {name}->data[{rnd(8)}]; }}  // {pick(words)} {pick(words)}")
        elif k == 4: lines.append(" " * ind + f'print(f"{pick(words)} {{{name}}}: {rnd(100)}%")'); ind = max(ind - 4, 0)
        else: lines.append("")
    return "\n".join(lines) + "\n"
def cjk():
    s = "".join(pick(zh) for _ in range(20 + rnd(60)))
    if rnd(2): s += "。" + "".join(pick(ja) for _ in range(10 + rnd(30)))
    return s + pick(["，", "。", "！", "：TensorRT-LLM的", "（tp-size）"])
def emojis():
    return " ".join(pick(emoji) + pick(words) for _ in range(5 + rnd(15)))
def numbers():
    return " ".join(pick([str(rnd(10 ** (1 + rnd(9)))), f"{rnd(1000)}.{rnd(100000)}", f"-{rnd(500)}",
                          f"{1990 + rnd(40)}-{1 + rnd(12):02d}-{1 + rnd(28):02d}", f"{rnd(1000):,}", f"+1 ({rnd(900)+100}) {rnd(9000)+1000}"])
                    for _ in range(10 + rnd(20)))
def spaces():
    return pick(words) + " " * (1 + rnd(12)) + "\t" * rnd(3) + pick(words) + "\n" * (1 + rnd(4)) + " " * rnd(9) + pick(words) + "\r\n"
kinds = [prose, prose, prose, code, code, cjk, emojis, numbers, spaces]
docs, total = [], 0
while total < 4_000_000:
    parts, n = [], 0
    while n < 2000 + rnd(6000):
        p = pick(kinds)()
        parts.append(p)
        n += len(p.encode())
    d = "\n\n".join(parts)
    docs.append(d)
    total += len(d.encode())
json.dump(docs, open(sys.argv[1], "w"), ensure_ascii=False)
PY

declare -A paths=(
  [llama3]="$root/third_party/tokenizers/llama3/tokenizer.json"
  [qwen3]="$root/third_party/tokenizers/qwen3/tokenizer.json"
  [llama2]="$root/third_party/tokenizers/llama2/tokenizer.json"
  [gpt2]="$root/third_party/tokenizers/gpt2/vocab.json"
  [tiny-code]="$root/tests/data/models/tiny-code/tokenizer.json"
)
names=(llama3 qwen3 llama2 gpt2 tiny-code)
args=()
for n in "${names[@]}"; do args+=(--tokenizer "$n=${paths[$n]}"); done
"$bench_bin" --corpus "$work/corpus.json" --repeat "$repeat" "${args[@]}" >"$work/kiln.json"

cat >"$work/rust.js" <<'JS'
// The Rust tokenizers library (Node binding) on the same corpus, one document per encode call, awaited one
// at a time (single thread), after one warm-up pass.
const fs = require("fs");
const [, , nodeDir, corpusPath, repeat, ...specs] = process.argv;
const t = require(nodeDir + "/node_modules/@anush008/tokenizers");
(async () => {
  const docs = JSON.parse(fs.readFileSync(corpusPath, "utf8"));
  const bytes = docs.reduce((a, d) => a + Buffer.byteLength(d, "utf8"), 0);
  const results = [];
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    const name = spec.slice(0, eq), path = spec.slice(eq + 1);
    let tok;
    if (path.endsWith("vocab.json")) {
      const model = await t.BPE.fromFile(path, path.replace(/vocab\.json$/, "merges.txt"));
      tok = new t.Tokenizer(model);
      tok.setPreTokenizer(t.byteLevelPreTokenizer(false, true));
    } else {
      tok = t.Tokenizer.fromFile(path);
    }
    const opts = { addSpecialTokens: false };
    let fnv = 2166136261 >>> 0, count = 0;
    for (const d of docs) {
      const ids = (await tok.encode(d, null, opts)).getIds();
      for (const id of ids) fnv = Math.imul((fnv ^ id) >>> 0, 16777619) >>> 0;
    }
    const secs = [];
    for (let r = 0; r < Number(repeat); r++) {
      let n = 0;
      const t0 = process.hrtime.bigint();
      for (const d of docs) n += (await tok.encode(d, null, opts)).getLength();
      secs.push(Number(process.hrtime.bigint() - t0) / 1e9);
      count = n;
    }
    const sorted = [...secs].sort((a, b) => a - b);
    const mbs = bytes / 1e6 / sorted[Math.floor(sorted.length / 2)];
    results.push({ name, tokens: count, ids_fnv1a32: fnv, seconds: secs, mb_per_s: mbs });
    console.error(`rust ${name.padEnd(8)} ${mbs.toFixed(2).padStart(8)} MB/s  (${count} tokens)`);
  }
  console.log(JSON.stringify({ corpus_bytes: bytes, documents: docs.length, results }, null, 2));
})().catch((e) => { console.error(e); process.exit(1); });
JS
specs=()
for n in "${names[@]}"; do specs+=("$n=${paths[$n]}"); done
TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 \
  node "$work/rust.js" "$node_dir" "$work/corpus.json" "$repeat" "${specs[@]}" >"$work/rust.json"

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$root" status --porcelain -- src/tokenizer include/kiln/tokenizer.h 2>/dev/null | head -c1)"
python3 - "$work/kiln.json" "$work/rust.json" "$root/bench/results/tokenizer-encode.json" "$commit${dirty:+-dirty}" "$repeat" <<'PY'
import json, sys, platform, subprocess, datetime
kiln, rust = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
cpu = "unknown"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
rust_by = {r["name"]: r for r in rust["results"]}
rows = []
for k in kiln["results"]:
    r = rust_by[k["name"]]
    rows.append({"tokenizer": k["name"],
                 "kiln_mb_per_s": round(k["mb_per_s"], 2),
                 "rust_tokenizers_mb_per_s": round(r["mb_per_s"], 2),
                 "speedup": round(k["mb_per_s"] / r["mb_per_s"], 2),
                 "tokens": k["tokens"],
                 "ids_identical": k["ids_fnv1a32"] == r["ids_fnv1a32"] and k["tokens"] == r["tokens"],
                 "kiln_seconds": [round(s, 4) for s in k["seconds"]],
                 "rust_seconds": [round(s, 4) for s in r["seconds"]]})
out = {
  "benchmark": "single-thread encode throughput, one document per call, no special tokens; median of timed passes after a warm-up pass",
  "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
  "machine": {"cpu": cpu, "cores": __import__("os").cpu_count(), "os": platform.platform()},
  "commit": sys.argv[4],
  "command": "scripts/bench-tokenizer.sh " + sys.argv[5],
  "corpus": {"bytes": kiln["corpus_bytes"], "documents": kiln["documents"],
             "content": "deterministic mix: English prose, Python/C-like code, Chinese and Japanese, emoji, numbers, whitespace runs"},
  "rust_library": "tokenizers 0.22.2 via npm @anush008/tokenizers@0.6.0 (+ -linux-x64-gnu), encode() awaited per document",
  "results": rows,
}
json.dump(out, open(sys.argv[3], "w"), indent=2)
print(json.dumps(rows, indent=1))
PY
echo "bench-tokenizer: wrote bench/results/tokenizer-encode.json"
