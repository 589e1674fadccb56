#!/usr/bin/env bash
# Here (no GPU needed): builds the binaries scripts/gpu-check.sh runs, statically linked against PCRE2, ICU,
# OpenBLAS and fmt (KILN_STATIC_DEPS: the GPU machines lack them), strips and packs them into
# .gpu-carry/bin.tar.xz (git-ignored through .git/info/exclude), for the device tool's `carry`: folder bin/.
# BASE=COMMIT also packs that commit's kiln and kiln_gpu_bench into the same archive (folder base/; built the same
# way in a worktree, BASE_SRC, default ../kiln-base), for gpu-check's baseline phase. One archive: xz's large
# dictionary stores the code both commits share once (31 MB for both instead of 22 + 21), which keeps the tree plus
# the carry under the device tool's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${KILN_BUILD:-build-gpu}
[ -f "$BUILD/build.ninja" ] || cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_STATIC_DEPS=ON
cmake --build "$BUILD" -j "${JOBS:-2}" --target test_backend_cuda kiln kiln_gpu_bench
grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >> .git/info/exclude
rm -rf .gpu-carry/stage && mkdir -p .gpu-carry/stage/bin
for b in test_backend_cuda kiln kiln_gpu_bench; do strip -o ".gpu-carry/stage/bin/$b" "$BUILD/bin/$b"; done
# CUPTI for the decode profile's kernel timeline (opened at run time; the GPU machines may lack it).
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/extras/CUPTI/lib64; do
  if [ -f "$d/libcupti.so.13" ]; then cp -L "$d/libcupti.so.13" .gpu-carry/stage/bin/; break; fi
done
c=$(git rev-parse HEAD)
git diff --quiet HEAD -- src tests bench tools scripts CMakeLists.txt || c="$c+uncommitted"
echo "$c" > .gpu-carry/commit
if [ -n "${BASE:-}" ]; then
  SRC=${BASE_SRC:-../kiln-base}
  [ -d "$SRC" ] || git worktree add "$SRC" "$BASE"
  git -C "$SRC" checkout -q "$BASE"
  [ -f "$SRC/build-gpu/build.ninja" ] ||
    cmake -S "$SRC" -B "$SRC/build-gpu" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_STATIC_DEPS=ON
  cmake --build "$SRC/build-gpu" -j "${JOBS:-2}" --target kiln kiln_gpu_bench
  mkdir -p .gpu-carry/stage/base
  for b in kiln kiln_gpu_bench; do strip -o ".gpu-carry/stage/base/$b" "$SRC/build-gpu/bin/$b"; done
fi
tar -cf - -C .gpu-carry/stage . | xz --lzma2=preset=9e,dict=256MiB -T1 > .gpu-carry/bin.tar.xz
rm -rf .gpu-carry/stage .gpu-carry/base.tar.xz
ls -la .gpu-carry
