#!/usr/bin/env bash
# The control API with curl: boot a VM with a control socket, then ping, info, shrink and grow it,
# switch automatic reclamation on and off, read its counters and its Prometheus metrics, and shut it
# down - each request printed before its answer. Any HTTP client that speaks Unix sockets works the same way (api/openapi.yaml).
#
#   examples/curl.sh [path/to/hvmm]
set -euo pipefail
HVMM=${1:-"$(dirname "$0")/../build/hvmm"}
SOCK=$(mktemp -u /tmp/hvmm-curl.XXXXXX.sock)

# The guest touches 2 GiB, frees it and waits: there is free memory to take back.
"$HVMM" run --mem 4G --cpus 2 --quiet --api-sock "$SOCK" --workload "alloc 2G; free; barrier" &
VM=$!
trap 'kill $VM 2>/dev/null; wait $VM 2>/dev/null; rm -f "$SOCK"' EXIT

api() {  # api METHOD PATH [JSON]
  echo "\$ curl --unix-socket $SOCK -X $1 http://localhost$2${3:+ -d '$3'}"
  curl -sS --unix-socket "$SOCK" -X "$1" "http://localhost$2" ${3:+-d "$3"} -w '%{http_code}\n' | sed 's/^/  /'
}

until [ -S "$SOCK" ] && curl -s --unix-socket "$SOCK" http://localhost/api/v1/vm.counters | grep -q '"barrier_waiting":true'; do
  sleep 0.1
done
api GET /api/v1/vmm.ping
api GET /api/v1/vm.info
api PUT /api/v1/vm.resize '{"size":"1G"}'
api PUT /api/v1/vm.resize '{"size":"4G"}'
api PUT /api/v1/vm.resize '{"size":"100M"}'   # below the floor (--mem-min, 256 MiB): refused
api PUT /api/v1/vm.auto-reclaim '{"enabled":true,"period":"200ms"}'
api PUT /api/v1/vm.auto-reclaim '{"enabled":false}'
api GET /api/v1/vm.counters
PICK='^hvmm_(host_rss_bytes|guest_free_bytes|usable_bytes|detail_(soft|hard)_bytes|detail_installs|resize_duration_seconds_(bucket\{le="0.01"\}|count|sum)) '
echo "\$ curl --unix-socket $SOCK http://localhost/metrics | grep -E '$PICK'"
curl -sS --unix-socket "$SOCK" http://localhost/metrics | grep -E "$PICK" | sed 's/^/  /'
api PUT /api/v1/vm.shutdown
wait $VM
trap - EXIT
