#!/usr/bin/env bash
# On a lent GPU machine (the device tool runs this in the repository root, with .gpu-carry carried): unpacks the
# prebuilt binaries of bench/gpu/pack.sh into build-gpu/bin (and build-base/bin), runs scripts/gpu-check.sh into a
# folder, and packs that folder (one JSON per run) into $OUT/results.tar.gz (the tool returns at most 8 files).
set -uo pipefail
ROOT=$(pwd)
# bin/: this commit's binaries; base/ (BASE=COMMIT bench/gpu/pack.sh): an earlier commit's, for the baseline phase.
if [ -f .gpu-carry/bin.tar.xz ]; then
  rm -rf .gpu-carry/unpacked && mkdir -p .gpu-carry/unpacked build-gpu &&
    tar -xJf .gpu-carry/bin.tar.xz -C .gpu-carry/unpacked || exit 1
  rm -rf build-gpu/bin && mv .gpu-carry/unpacked/bin build-gpu/bin
  if [ -d .gpu-carry/unpacked/base ]; then
    rm -rf build-base && mkdir -p build-base && mv .gpu-carry/unpacked/base build-base/bin &&
      export BASE_BIN=$ROOT/build-base/bin
  fi
fi
# The test binaries find fixtures through the source path compiled into them (/work/main).
[ -e /work/main ] || { mkdir -p /work && ln -s "$ROOT" /work/main; }
RES=$(mktemp -d /tmp/gpu-results-XXXXXX)
# REFERENCES=1: transformers' references regenerated first (scripts/dev/regenerate-references.sh), packed into
# $OUT/references.tar.gz, so that the tests below read them.
if [ "${REFERENCES:-0}" = 1 ]; then
  OUT_TAR=${OUT:-/tmp}/references.tar.gz bash scripts/dev/regenerate-references.sh >"$RES/references.log" 2>&1 ||
    { tail -40 "$RES/references.log"; echo "device-run: references failed" >&2; }
  tail -5 "$RES/references.log"
fi
KILN_BUILD=$ROOT/build-gpu timeout "${BUDGET_S:-540}" bash scripts/gpu-check.sh "$RES"
rc=$?
tar -czf "${OUT:-/tmp}/results.tar.gz" -C "$RES" .
exit $rc
