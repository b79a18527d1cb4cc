// The interference workloads (guest/interference_steps.cpp) run briefly on every vCPU and report
// plausible, non-zero samples in the format bench/interference/samples.py parses.
#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <sstream>

#include "hvmm_env.hpp"

using namespace hvmm::testing;

TEST_CASE("stream: every vCPU copies and reports bandwidth with timestamps", "[kvm]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "512M", "--cpus", "2", "--quiet", "--workload", "stream 1s 64M"});
  INFO(r.describe());
  REQUIRE(r.exited);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("stream: running\n") != std::string::npos);
  std::regex pass("stream: cpu=(\\d+) t_us=(\\d+) bytes=(\\d+) us=(\\d+)");
  std::map<unsigned, unsigned> passes;
  std::map<unsigned, uint64_t> last_t;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, pass)) continue;
    unsigned cpu = std::stoul(m[1]);
    uint64_t t = std::stoull(m[2]), bytes = std::stoull(m[3]), us = std::stoull(m[4]);
    CHECK(bytes == 32ull << 20);  // each CPU copies 16 MiB into 16 MiB; STREAM counts read + written
    CHECK(us > 0);
    CHECK(t >= last_t[cpu] + us);  // passes follow each other on a CPU
    CHECK(t < 2'000'000);  // the last pass ends soon after the duration
    last_t[cpu] = t;
    passes[cpu]++;
  }
  CHECK(passes.size() == 2);
  for (auto [cpu, n] : passes) CHECK(n >= 3);
  std::smatch done;
  REQUIRE(std::regex_search(r.out, done, std::regex("stream: done passes=(\\d+) failed_cpus=0")));
  CHECK(std::stoul(done[1]) == passes[0] + passes[1]);
}

TEST_CASE("ftq: every vCPU reports work for every quantum", "[kvm]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "256M", "--cpus", "2", "--quiet", "--workload", "ftq 200ms 1ms"});
  INFO(r.describe());
  REQUIRE(r.exited);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("ftq: setup cpus=2 quantum_us=1000 quanta=200\n") != std::string::npos);
  std::regex line_re("ftq: cpu=(\\d+) q=(\\d+):((?: \\d+)+)");
  std::map<unsigned, std::vector<uint64_t>> counts;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, line_re)) continue;
    auto& v = counts[std::stoul(m[1])];
    CHECK(std::stoul(m[2]) == v.size());  // lines in order, 16 quanta each
    std::istringstream nums(m[3].str());
    for (uint64_t n; nums >> n;) v.push_back(n);
  }
  REQUIRE(counts.size() == 2);
  for (auto& [cpu, v] : counts) {
    CHECK(v.size() == 200);
    uint64_t nonzero = 0, sum = 0;
    for (uint64_t n : v) {
      nonzero += n > 0;
      sum += n;
      CHECK(n < 100'000'000);  // a 1 ms quantum holds ~30 k units here; more would be garbage
    }
    // Quanta the host preempted the vCPU through count 0 (that is what FTQ measures); under a loaded
    // test run that can be many of them, but the CPU did work.
    CHECK(nonzero > 0);
    CHECK(sum > 0);
  }
  CHECK(r.out.find("ftq: done quanta=400 failed_cpus=0") != std::string::npos);
}

TEST_CASE("stream, ftq: arguments are checked before the first step runs", "[kvm]") {
  HVMM_REQUIRE_KVM();
  for (const char* w : {"echo x; stream", "echo x; stream 0s", "echo x; stream 1s 2M", "echo x; stream 1s 65G",
                        "echo x; ftq 1s 1us", "echo x; ftq 2h"}) {
    auto r = run_hvmm({"run", "--mem", "256M", "--quiet", "--workload", w});
    INFO(w << "\n" << r.describe());
    REQUIRE(r.exited);
    CHECK(r.status == 2);  // the built-in kernel's "bad workload" exit code (abi/exit_status.hpp)
    CHECK(r.out.find("x\n") == std::string::npos);
  }
}

TEST_CASE("stream: arrays larger than free memory fail the step, after the others ran", "[kvm]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "256M", "--quiet", "--workload", "echo x; stream 1s 1G"});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 3);  // kStepFailed (abi/exit_status.hpp)
  CHECK(r.out.find("x\n") != std::string::npos);
  CHECK(r.out.find("out of memory for its 512 MiB of arrays") != std::string::npos);
  CHECK(r.out.find("stream: done passes=0 failed_cpus=2") != std::string::npos);
}
