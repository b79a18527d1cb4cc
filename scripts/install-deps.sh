#!/usr/bin/env bash
# Installs everything hvmm needs to build, test and benchmark, from Debian 12 packages only.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libfdt-dev libfmt-dev catch2 libcli11-dev
      nlohmann-json3-dev libmicrohttpd-dev clang libclang-rt-14-dev python3 python3-matplotlib
      python3-yaml python3-jsonschema curl)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
