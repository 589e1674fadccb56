#!/usr/bin/env bash
# Installs the Debian packages kiln builds against. Idempotent: does nothing when all are present.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config ccache nlohmann-json3-dev libcli11-dev libpcre2-dev
      libopenblas-dev libfmt-dev libspdlog-dev libcpp-httplib-dev libgtest-dev libgmock-dev libbenchmark-dev
      python3 python3-jinja2 nodejs libicu-dev libboost-dev
      python3-dev pybind11-dev python3-pytest python3-venv python3-pip python3-setuptools python3-wheel)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
