// Booting the built-in guest kernel under KVM and running its basic workload steps.
#include <signal.h>

#include <catch2/catch.hpp>
#include <regex>

#include "hvmm_env.hpp"

using namespace hvmm::testing;
using namespace std::chrono_literals;

namespace {

constexpr int kGuestException = 121;  // devices/vm_control.hpp exit_status::kGuestException

// `info` prints exactly one line: cpus=N mem=BYTES tsc_hz=<positive>.
void check_info(unsigned cpus, const std::string& mem, uint64_t mem_bytes) {
  auto r = run_hvmm({"run", "--mem", mem, "--cpus", std::to_string(cpus), "--workload", "info"});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 0);
  std::regex want("cpus=" + std::to_string(cpus) + " mem=" + std::to_string(mem_bytes) + " tsc_hz=[1-9][0-9]*\n");
  CHECK(std::regex_match(r.out, want));
}

}  // namespace

TEST_CASE("boot: 1 vCPU, 64 MiB", "[kvm]") {
  HVMM_REQUIRE_KVM();
  check_info(1, "64M", 64ull << 20);
}

TEST_CASE("boot: 2 vCPUs, 64 MiB", "[kvm]") {
  HVMM_REQUIRE_KVM();
  check_info(2, "64M", 64ull << 20);
}

TEST_CASE("boot: 1 vCPU, 16 GiB", "[kvm]") {
  HVMM_REQUIRE_KVM();
  check_info(1, "16G", 16ull << 30);
}

TEST_CASE("boot: 2 vCPUs, 16 GiB", "[kvm]") {
  HVMM_REQUIRE_KVM();
  check_info(2, "16G", 16ull << 30);
}

TEST_CASE("boot: a 16 GiB guest does not make hvmm touch 16 GiB", "[kvm]") {
  HVMM_REQUIRE_KVM();
  // Sleep so that RSS is sampled while the VM is up, not only during start-up.
  std::optional<uint64_t> live;
  auto r = run_hvmm({"run", "--mem", "16G", "--cpus", "2", "--workload", "info; sleep 300ms"}, kRunTimeout,
                    [&](ChildProcess& c) {
                      if (c.wait_for_stdout("cpus=", 10'000ms)) live = c.rss_kib();
                    });
  INFO(r.describe());
  CHECK(r.status == 0);
  REQUIRE(live.has_value());
  CHECK(*live > 0);
  CHECK(r.peak_rss_kib < 256u * 1024);  // guest RAM is backed lazily
}

TEST_CASE("workload: exit 7 is hvmm's exit status", "[kvm]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "64M", "--workload", "exit 7"});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 7);
}

TEST_CASE("workload: plain exit is status 0", "[kvm]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "64M", "--workload", "exit"});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 0);
}

TEST_CASE("workload: steps run in order, the last exit code wins", "[kvm]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "64M", "--cpus", "1", "--workload", "info; exit 3"});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 3);
  CHECK(r.out.rfind("cpus=1 mem=67108864 tsc_hz=", 0) == 0);
}

TEST_CASE("workload: fault is a guest exception naming #PF and the address", "[kvm]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "64M", "--workload", "fault"});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == kGuestException);
  CHECK_THAT(r.err, Catch::Contains("vector 14"));
  CHECK_THAT(r.err, Catch::Contains("0x7f00dead0000"));  // guest/workload.cpp kUnmapped
}

TEST_CASE("workload: an unknown step fails with a message before anything runs", "[kvm]") {
  HVMM_REQUIRE_KVM();
  // Step 1 would exit 5; the typo in step 2 must be reported first (dry run).
  auto r = run_hvmm({"run", "--mem", "64M", "--workload", "exit 5; bogus"});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status != 0);
  CHECK(r.status != 5);
  CHECK_THAT(r.out + r.err, Catch::Contains("bogus"));
}

TEST_CASE("workload: a bad step argument fails with the step's usage", "[kvm]") {
  HVMM_REQUIRE_KVM();
  for (const char* w : {"exit 999", "sleep xyz"}) {
    auto r = run_hvmm({"run", "--mem", "64M", "--workload", w});
    INFO(w << ": " << r.describe());
    REQUIRE(r.exited);
    CHECK(r.status != 0);
    CHECK_THAT(r.out + r.err, Catch::Contains("usage"));
  }
}

TEST_CASE("workload: sleep 300ms takes at least 0.3 s", "[kvm]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "64M", "--workload", "sleep 300ms"});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 0);
  CHECK(r.elapsed >= 300ms);
}

TEST_CASE("signals: SIGINT stops a running VM with status 130", "[kvm]") {
  HVMM_REQUIRE_KVM();
  bool booted = false;
  auto r = run_hvmm({"run", "--mem", "64M", "--workload", "info; sleep 30s"}, kRunTimeout, [&](ChildProcess& c) {
    booted = c.wait_for_stdout("cpus=", 10'000ms);
    ::kill(c.pid(), SIGINT);
  });
  INFO(r.describe());
  CHECK(booted);
  REQUIRE(r.exited);
  CHECK(r.status == 130);  // exit_status::kInterrupted
  CHECK(count_lines(r.err) == 1);
  CHECK_THAT(r.err, Catch::Contains("SIGINT"));
}
