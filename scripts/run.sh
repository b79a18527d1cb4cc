#!/usr/bin/env bash
# Installs what hvmm needs, builds it (build/) and boots a 16 GiB VM with automatic reclamation.
# Extra arguments go to `hvmm run`, e.g.: bash scripts/run.sh --cpus 2 --workload "info; sleep 5s"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j2 --target hvmm
exec build/hvmm run --mem 16G --auto-reclaim "$@"
