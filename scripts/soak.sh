#!/usr/bin/env bash
# Data-integrity soak (issue 13), off by default:
#   scripts/soak.sh DURATION [MECHANISM...]      e.g. scripts/soak.sh 10m
# For each mechanism (default: hyperalloc balloon balloon-huge virtio-mem) it boots a 2 GiB VM with 2
# vCPUs running `churn DURATION` (random allocations of 4 KiB..4 MiB, each filled with a pattern and
# verified when freed) under --auto-reclaim, while this script storms it with resizes to random
# sizes through the control socket. At the end it prints, per mechanism, the guest's counts
# (allocations, frees, out-of-memory, corrupted) and the resizes (done / refused or stopped short);
# exit status non-zero if any block was corrupted, a VM failed, or hvmm did not answer.
#
# HVMM=path/to/hvmm (default build/hvmm); SOAK_MEM (default 2G).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
if [ $# -lt 1 ]; then
  echo "usage: scripts/soak.sh DURATION [hyperalloc|balloon|balloon-huge|virtio-mem ...]" >&2
  exit 2
fi
duration=$1
shift
mechanisms=("$@")
[ ${#mechanisms[@]} -eq 0 ] && mechanisms=(hyperalloc balloon balloon-huge virtio-mem)
HVMM=${HVMM:-build/hvmm}
MEM=${SOAK_MEM:-2G}
mem_mib=$(( $(numfmt --from=iec "$MEM") >> 20 ))
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# Seconds in DURATION (s/m/h suffix).
secs() {
  case $1 in
    *h) echo $(( ${1%h} * 3600 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
total=$(secs "$duration")
failed=0
summary=()
for m in "${mechanisms[@]}"; do
  sock=$tmp/$m.sock
  out=$tmp/$m.out
  lo=$((mem_mib / 2))
  [ "$m" = virtio-mem ] && lo=$((mem_mib / 4))  # its boot memory (--virtio-mem-boot) is never unplugged
  "$HVMM" run --mem "$MEM" --cpus 2 --reclaim "$m" --auto-reclaim --quiet --api-sock "$sock" \
    --workload "churn $duration" >"$out" 2>"$tmp/$m.err" &
  pid=$!
  ok=0 short=0 silent=0
  end=$((SECONDS + total + 5))
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt "$end" ]; do
    size=$(( (lo + RANDOM % (mem_mib - lo + 1)) / 2 * 2 ))M
    if timeout 30 "$HVMM" ctl --api-sock "$sock" resize "$size" >/dev/null 2>&1; then
      ok=$((ok + 1))
    elif ! kill -0 "$pid" 2>/dev/null; then
      break
    elif timeout 10 "$HVMM" ctl --api-sock "$sock" status >/dev/null 2>&1; then
      short=$((short + 1))  # refused or stopped short (the guest uses the memory): fine, counted
    else
      # The churn may have just ended: a VM on its way out is not a VM that stopped answering.
      sleep 1
      kill -0 "$pid" 2>/dev/null || break
      silent=$((silent + 1))
    fi
    sleep 0.$((RANDOM % 5))
  done
  timeout $((total + 60)) tail --pid="$pid" -f /dev/null
  wait "$pid"
  rc=$?
  pid=
  counts=$(grep -o 'churn: .*' "$out" | tail -n 1)
  line="$m: ${counts:-no churn result} | resizes: $ok done, $short refused or short, $silent unanswered | exit $rc"
  summary+=("$line")
  if [ "$rc" -ne 0 ] || [ "$silent" -ne 0 ] || ! grep -q ' 0 corrupted' <<<"$counts"; then
    failed=1
    sed 's/^/  stderr: /' "$tmp/$m.err" | tail -n 5
  fi
  echo "$line"
done

echo "==== soak $duration per mechanism, ${MEM} VM, 2 vCPUs ===="
printf '%s\n' "${summary[@]}"
[ "$failed" -eq 0 ] && echo "soak: zero verification failures" || echo "soak: FAILED"
exit "$failed"
