#!/usr/bin/env bash
# A scripted launch: boot a VM with a control socket, let the guest touch and free memory, shrink it
# (the host takes the free memory back), grow it again, and print the status at each stage.
#
#   examples/resize.sh [path/to/hvmm] [--reclaim balloon]
set -euo pipefail
HVMM=${1:-"$(dirname "$0")/../build/hvmm"}
shift || true
SOCK=$(mktemp -u /tmp/hvmm-example.XXXXXX.sock)

# The guest holds 1 GiB, touches and frees 3 GiB more, then waits at a barrier until we are done.
"$HVMM" run --mem 8G --cpus 2 --quiet --api-sock "$SOCK" "$@" \
  --workload "alloc 1G; alloc 3G; free; barrier; verify; stats" &
VM=$!
trap 'kill $VM 2>/dev/null; wait $VM 2>/dev/null; rm -f "$SOCK"' EXIT

ctl() { "$HVMM" ctl --api-sock "$SOCK" "$@"; }
rss() { awk '/VmRSS/ {printf "%.2f GiB", $2 / 1048576}' "/proc/$VM/status"; }
field() { ctl --pretty status | sed -n "s/^  \"$1\": \\(.*\\),\\?$/\\1/p" | tr -d ','; }

until [ -S "$SOCK" ] && [ "$(field barrier_waiting)" = true ]; do sleep 0.1; done
echo "guest touched 4 GiB, holds 1 GiB:  host RSS $(rss)"
ctl resize 2G
echo "after resize 2G:                   host RSS $(rss)"
ctl resize 8G
echo "after resize 8G:                   host RSS $(rss) (memory comes back when the guest uses it)"
ctl status
ctl continue >/dev/null
wait $VM
trap - EXIT
rm -f "$SOCK"
