#!/usr/bin/env bash
# shellcheck disable=SC2317  # the stage functions are called indirectly, through stage()
# The whole test suite, from a fresh Debian 12 as root:
#   main build (unit + KVM integration tests), ASan+UBSan (unit tests, and the hostile-guest and
#   fault KVM tests against an ASan hvmm), TSan (concurrency tests, and the hostile-guest, fault and
#   install-storm KVM tests against a TSan hvmm), and libFuzzer targets (15 s each) if clang is
#   present.
# Exits non-zero if any stage fails; the last line is "N passed, N failed" (CTest tests, all stages).
#
# HVMM_BUILD_PREFIX=build-foo puts the build trees in build-foo, build-foo-asan, ... instead of
# build, build-asan, ... (for running it next to other people's builds).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
PREFIX=${HVMM_BUILD_PREFIX:-build}
JOBS=2
passed=0
failed=0
failed_stages=()
stage_times=()
suite_start=$SECONDS

banner() { printf '\n==== %s ====\n' "$*"; }

# build DIR TARGETS... : builds the given targets (all if none); output goes to DIR/build.log.
build() {
  local dir=$1
  shift
  local args=()
  [ $# -gt 0 ] && args=(--target "$@")
  # Keep going after an error, so that one broken target does not hide the tests of the others.
  local keep_going=(-k)
  [ -f "$dir/build.ninja" ] && keep_going=(-k 0)
  echo "building ${*:-all} in $dir (log: $dir/build.log)"
  if ! cmake --build "$dir" -j"$JOBS" "${args[@]}" -- "${keep_going[@]}" >"$dir/build.log" 2>&1; then
    tail -n 40 "$dir/build.log"
    echo "build failed in $dir"
    return 1
  fi
  grep -E 'warning:' "$dir/build.log" | sort -u | head -n 20 || true
}

# configure DIR CMAKE_ARGS... : output goes to DIR/configure.log.
configure() {
  local dir=$1
  shift
  mkdir -p "$dir"
  if ! cmake -S . -B "$dir" "$@" >"$dir/configure.log" 2>&1; then
    tail -n 40 "$dir/configure.log"
    echo "configure failed in $dir"
    return 1
  fi
}

# Test programs (CTest names) selected by CTEST_ARGS that are also build targets.
test_targets() {
  local dir=$1
  shift
  local targets
  targets=$(cmake --build "$dir" --target help 2>/dev/null | sed -n 's/^\.\.\. \([^ ]*\).*/\1/p')
  ctest --test-dir "$dir" -N "$@" | sed -n 's/^ *Test *#[0-9]*: //p' | while read -r t; do
    grep -qxF "$t" <<<"$targets" && echo "$t"
  done | sort -u
}

# run_ctest DIR CTEST_ARGS... : runs the tests and adds them to the totals.
run_ctest() {
  local dir=$1
  shift
  local log=${CTEST_LOG:-$dir/ctest.log} rc
  ctest --test-dir "$dir" -j"$JOBS" --output-on-failure "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local line total nfail
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [ -n "$line" ]; then
    nfail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
    passed=$((passed + total - nfail))
    failed=$((failed + nfail))
  elif [ "$rc" -eq 0 ]; then
    echo "ctest ran no tests in $dir"
    return 1
  fi
  return "$rc"
}

# run_kvm_against DIR CTEST_ARGS... : the main build's KVM tests, run against DIR's sanitized hvmm
# ($HVMM_BIN; tests/kvm/hvmm_env.hpp). What is under test is the binary the guest attacks, not the
# test harness, so the tests themselves are not built again with the sanitizer. A sanitizer report
# in any process fails the stage even where the test itself passed: every process writes its
# reports to DIR/sanitizer-report.<pid>.
run_kvm_against() {
  local dir=$1
  shift
  if [ ! -x "$dir/hvmm" ]; then
    echo "no hvmm in $dir: the KVM tests against it cannot run"
    return 1
  fi
  rm -f "$dir"/sanitizer-report.*
  local ok=0 report="$PWD/$dir/sanitizer-report"
  HVMM_BIN="$PWD/$dir/hvmm" CTEST_LOG="$dir/ctest-kvm.log" \
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$report" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$report" \
    TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}log_path=$report" \
    run_ctest "$PREFIX" "$@" || ok=1
  if compgen -G "$report.*" >/dev/null; then
    echo "sanitizer reports from the KVM tests:"
    head -n 60 "$report".*
    failed=$((failed + 1))
    ok=1
  fi
  return "$ok"
}

# stage NAME FUNCTION : runs FUNCTION with a banner, records failure and time.
stage() {
  local name=$1 fn=$2 t0=$SECONDS
  banner "$name"
  if "$fn"; then
    echo "stage '$name': OK ($((SECONDS - t0)) s)"
  else
    echo "stage '$name': FAILED ($((SECONDS - t0)) s)"
    failed_stages+=("$name")
  fi
  stage_times+=("$(printf '%-28s %4d s' "$name" $((SECONDS - t0)))")
}

deps() { bash scripts/install-deps.sh; }

main_build() {
  configure "$PREFIX" -DHVMM_SANITIZE= -DHVMM_BUILD_GUEST=ON -DHVMM_FUZZ=OFF || return 1
  local ok=0
  build "$PREFIX" || ok=1
  run_ctest "$PREFIX" || ok=1  # also after a failed build: what did build still runs, the rest counts as failed
  return "$ok"
}

asan_build() {
  local dir=$PREFIX-asan ok=0
  # -O0 (Debug): the sanitizers find the same bugs and this stage compiles about 3x faster. The
  # guest is built too: the hostile-guest and fault KVM tests (kvm/hostile:*, kvm/faults:*) run
  # against this ASan+UBSan hvmm (issue 13).
  configure "$dir" -DHVMM_SANITIZE=address -DHVMM_BUILD_GUEST=ON -DHVMM_FUZZ=OFF -DCMAKE_BUILD_TYPE=Debug || return 1
  # shellcheck disable=SC2046
  build "$dir" $(test_targets "$dir" -L unit) hvmm || ok=1
  run_ctest "$dir" -L unit || ok=1
  run_kvm_against "$dir" -R '^kvm/(hostile|faults):' || ok=1
  return "$ok"
}

tsan_build() {
  local dir=$PREFIX-tsan ok=0
  # The multi-threaded tests: allocator and reclaim (stress), virtio and UART devices, the control
  # API server, the process harness and the latency histogram.
  local select=(-R '^(test_alloc|test_alloc_stress|test_reclaim|test_reclaim_stress|test_virtio|test_basic_devices|test_api|test_child_process|test_latency_histogram)$')
  # And a TSan hvmm under the hostile-guest and fault KVM tests and the install storm (2 vCPUs
  # installing while resizes and auto-reclaim run): the VMM's own threads against each other.
  configure "$dir" -DHVMM_SANITIZE=thread -DHVMM_BUILD_GUEST=ON -DHVMM_FUZZ=OFF || return 1
  # shellcheck disable=SC2046
  build "$dir" $(test_targets "$dir" "${select[@]}") hvmm || ok=1
  run_ctest "$dir" "${select[@]}" || ok=1
  run_kvm_against "$dir" -R '^kvm/(hostile:|faults:|hyperalloc: churn on 2 vCPUs)' || ok=1
  return "$ok"
}

fuzz_build() {
  local dir=$PREFIX-fuzz ok=0
  CC=clang CXX=clang++ configure "$dir" -DHVMM_FUZZ=ON -DHVMM_BUILD_GUEST=OFF -DHVMM_SANITIZE= || return 1
  # shellcheck disable=SC2046
  build "$dir" $(test_targets "$dir" -L fuzz) || ok=1
  run_ctest "$dir" -L fuzz || ok=1
  return "$ok"
}

# Everything runs from inside main, so that bash has read the whole script before it starts
# (editing or updating the checkout during a run cannot change what this run does).
main() {
  stage "dependencies" deps
  stage "main build: unit + kvm" main_build
  stage "asan+ubsan: unit + hostile kvm" asan_build
  stage "tsan: concurrency" tsan_build
  if command -v clang++ >/dev/null 2>&1; then
    stage "fuzz (libFuzzer)" fuzz_build
  else
    banner "fuzz (libFuzzer)"
    echo "skipped: clang++ not installed"
  fi

  banner "summary"
  printf '%s\n' "${stage_times[@]}"
  echo "total: $((SECONDS - suite_start)) s"
  if [ ${#failed_stages[@]} -gt 0 ]; then
    printf 'failed stage: %s\n' "${failed_stages[@]}"
  fi
  echo "$passed passed, $failed failed"
  [ ${#failed_stages[@]} -eq 0 ] && [ "$failed" -eq 0 ]
}

main "$@"
exit $?
