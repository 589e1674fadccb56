#!/usr/bin/env bash
# On a lent GPU machine (the device tool runs this in the repository root, with .gpu-carry carried): unpacks the
# prebuilt binaries of bench/gpu/pack.sh into build-gpu/bin, runs scripts/gpu-check.sh into a folder, and packs
# that folder (one JSON per run) into $OUT/results.tar.gz (the tool returns at most 8 files).
set -uo pipefail
ROOT=$(pwd)
mkdir -p build-gpu/bin && tar -xJf .gpu-carry/bin.tar.xz -C build-gpu/bin || exit 1
# An earlier commit's binaries for the baseline phase (bench/gpu/pack.sh BASE=COMMIT), when carried.
if [ -f .gpu-carry/base.tar.xz ]; then
  mkdir -p build-base/bin && tar -xJf .gpu-carry/base.tar.xz -C build-base/bin && export BASE_BIN=$ROOT/build-base/bin
fi
# The test binaries find fixtures through the source path compiled into them (/work/main).
[ -e /work/main ] || { mkdir -p /work && ln -s "$ROOT" /work/main; }
RES=$(mktemp -d /tmp/gpu-results-XXXXXX)
KILN_BUILD=$ROOT/build-gpu timeout "${BUDGET_S:-540}" bash scripts/gpu-check.sh "$RES"
rc=$?
tar -czf "${OUT:-/tmp}/results.tar.gz" -C "$RES" .
exit $rc
