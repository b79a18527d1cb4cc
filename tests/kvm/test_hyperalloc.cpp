// HyperAlloc end to end on the built-in guest: the shared allocator in the guest (issue 3), and the
// host taking memory back through it — auto-reclaim, resize under a live working set, a clean guest
// out-of-memory below the shrunk size, churn against resize + auto-reclaim, hostile registrations.
#include <catch2/catch.hpp>

#include <regex>
#include <thread>

#include "ctl.hpp"
#include "hvmm_env.hpp"

using namespace hvmm::testing;
using namespace std::chrono_literals;

namespace {
constexpr uint64_t kMiB = 1024;  // in KiB, like VmRSS
constexpr uint64_t kGiB = 1024 * kMiB;

uint64_t number(const std::string& text, const std::string& pattern) {
  std::smatch m;
  REQUIRE(std::regex_search(text, m, std::regex(pattern)));
  return std::stoull(m[1]);
}
}  // namespace

TEST_CASE("guest allocator: alloc all, free all, alloc all again", "[kvm][alloc]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "4G", "--cpus", "2", "--quiet", "--workload",
                     "alloc all; verify; stats; free all; stats; alloc all; verify"},
                    60'000ms);
  INFO(r.describe());
  REQUIRE(r.exited);
  REQUIRE(r.status == 0);
  const uint64_t ram = 4ull << 30;
  std::smatch m;
  auto text = r.out;
  std::regex alloc_re("alloc: ([0-9]+) bytes");
  std::vector<uint64_t> allocated;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), alloc_re); it != std::sregex_iterator(); ++it)
    allocated.push_back(std::stoull((*it)[1]));
  REQUIRE(allocated.size() == 2);
  for (auto a : allocated) CHECK(a >= ram / 100 * 95);
  // Everything came back: the second pass gets as much as the first, give or take the list pages
  // that record the frames (how the work splits over the 2 vCPUs moves one or two of them).
  CHECK(allocated[1] + 4 * 4096 >= allocated[0]);
  CHECK(allocated[0] + 4 * 4096 >= allocated[1]);
  std::regex stats_re("free=([0-9]+) used=([0-9]+) huge_free=([0-9]+)");
  std::vector<uint64_t> frees;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), stats_re); it != std::sregex_iterator(); ++it)
    frees.push_back(std::stoull((*it)[1]));
  REQUIRE(frees.size() == 2);
  CHECK(frees[0] < 16 * (1 << 20));           // after alloc all: (almost) nothing free
  CHECK(frees[1] >= ram / 100 * 95);          // after free all: the memory is back
  CHECK_THAT(r.out, Catch::Contains("verify: ok"));
}

TEST_CASE("hyperalloc: auto-reclaim gives freed memory back within 10 s", "[kvm][hyperalloc]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  uint64_t peak = 0;
  std::optional<double> seconds_to_low;
  auto r = run_hvmm({"run", "--mem", "8G", "--cpus", "2", "--quiet", "--auto-reclaim", "--api-sock", sock, "--workload",
                     "alloc 2G; free; sleep 20s"},
                    60'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("alloc: ", 30'000ms)) return;
                      peak = c.rss_kib().value_or(0);  // the guest holds 2 GiB right now
                      if (!c.wait_for_stdout("free: ", 30'000ms)) return;
                      auto freed = std::chrono::steady_clock::now();
                      while (std::chrono::steady_clock::now() - freed < 15s && c.running()) {
                        auto rss = c.rss_kib();
                        if (rss && *rss < 512 * kMiB) {
                          seconds_to_low = std::chrono::duration<double>(std::chrono::steady_clock::now() - freed).count();
                          break;
                        }
                        std::this_thread::sleep_for(50ms);
                      }
                      ctl(sock, {"shutdown"});
                    });
  INFO(r.describe());
  CHECK(peak > 2 * kGiB);
  REQUIRE(seconds_to_low.has_value());
  CHECK(*seconds_to_low <= 10.0);
  CHECK(r.exited);
  CHECK(r.status == 0);
}

TEST_CASE("hyperalloc: shrink under a live working set, then grow and reuse", "[kvm][hyperalloc]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  std::optional<uint64_t> rss_before, rss_small;
  ProcessResult small, big, cont;
  auto r = run_hvmm({"run", "--mem", "8G", "--cpus", "2", "--quiet", "--api-sock", sock, "--workload",
                     "alloc 1G; alloc 5G; free; barrier; verify; alloc 3G; verify"},
                    90'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 60'000ms)) return;
                      rss_before = c.rss_kib();
                      small = ctl(sock, {"resize", "2G"});
                      rss_small = c.rss_kib();
                      big = ctl(sock, {"resize", "8G"});
                      cont = ctl(sock, {"continue"});
                    });
  INFO(r.describe());
  INFO("resize 2G: " << small.describe());
  INFO("resize 8G: " << big.describe());
  REQUIRE(rss_before.has_value());
  CHECK(*rss_before > 5 * kGiB);
  CHECK(small.status == 0);
  REQUIRE(rss_small.has_value());
  CHECK(*rss_small < 1536 * kMiB);
  CHECK(big.status == 0);
  CHECK(cont.status == 0);
  REQUIRE(r.exited);
  CHECK(r.status == 0);
  CHECK(number(r.out, "verify: ok, ([0-9]+) blocks in 1 region") == 262144);
  CHECK(number(r.out, "verify: ok, ([0-9]+) blocks in 2 region") == 262144 + 786432);
}

TEST_CASE("hyperalloc: a guest asking for more than its shrunk size gets a clean out-of-memory", "[kvm][hyperalloc]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  ProcessResult small;
  auto r = run_hvmm({"run", "--mem", "4G", "--cpus", "2", "--quiet", "--api-sock", sock, "--workload",
                     "barrier; alloc 3G; verify"},
                    60'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 30'000ms)) return;
                      small = ctl(sock, {"resize", "2G"});
                      ctl(sock, {"continue"});
                    });
  INFO(r.describe());
  INFO("resize 2G: " << small.describe());
  CHECK(small.status == 0);
  REQUIRE(r.exited);
  CHECK(r.status == 3);  // the step failed in the guest; hvmm itself is fine
  CHECK_THAT(r.out, Catch::Contains("alloc 3G: out of memory"));
  CHECK(r.err.find("hvmm:") == std::string::npos);  // no host-side complaint
}

TEST_CASE("hyperalloc: churn on 2 vCPUs against back-to-back resizes and auto-reclaim at 100 ms", "[kvm][hyperalloc]") {
  // Data safety under the heaviest host activity there is: every vCPU allocates, fills, checks and
  // frees random blocks for 30 s while resizes follow each other without pause and auto-reclaim
  // scans every 100 ms. Zero corruption, no anomaly, and every install's latency and mutex wait
  // recorded. No wall-clock bound: on a 2-core host running the suite in parallel a mutex holder is
  // preempted for tens of ms (CI saw a 58 ms wait), so such a bound measures the scheduler. That an
  // install waits for at most one batch is tested structurally (test_zone_state, "release the zone
  // mutex after every batch"); its latency under this storm is bench/install_latency.py's figure.
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  std::optional<nlohmann::json> final_status;
  int resizes = 0;
  auto r = run_hvmm({"run", "--mem", "2G", "--cpus", "2", "--quiet", "--auto-reclaim=100ms", "--api-sock", sock,
                     "--workload", "churn 30s; stats; barrier"},
                    120'000ms, [&](ChildProcess& c) {
                      std::this_thread::sleep_for(500ms);
                      const char* sizes[] = {"512M", "2G", "1G", "1536M", "768M", "2G"};
                      while (c.running() && c.out_so_far().find("barrier: waiting") == std::string::npos) {
                        ctl(sock, {"resize", sizes[resizes++ % 6]});  // may stop short: the guest holds memory
                      }
                      final_status = ctl_status(sock);
                      ctl(sock, {"continue"});
                    });
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains(", 0 corrupted"));
  CHECK(resizes >= 20);
  REQUIRE(final_status.has_value());
  INFO(final_status->dump(2));
  const auto& d = (*final_status)["detail"];
  CHECK(d["anomalies"] == 0);
  CHECK(d["hard_reclaims"].get<uint64_t>() > 0);
  CHECK(d["installs"].get<uint64_t>() > 0);
  CHECK(d["first_touch_installs"].get<uint64_t>() + d["reinstalls"].get<uint64_t>() == d["installs"].get<uint64_t>());
  const auto& lat = d["install_latency_us"];
  CHECK(lat["count"].get<uint64_t>() >= d["installs"].get<uint64_t>());
  CHECK(lat["max"].get<double>() > 0);
  const auto& wait = d["install_parts_us"]["mutex_wait"];
  CHECK(wait["count"].get<uint64_t>() >= d["installs"].get<uint64_t>());
  CHECK_THAT(r.out, Catch::Contains("install_latency_us p50="));  // the guest's side
}

TEST_CASE("hyperalloc: hostile registrations and installs are refused, the VM runs on", "[kvm][hyperalloc]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "4G", "--cpus", "1", "--quiet", "--cmdline", "hvmm.no_register", "--workload",
                     "hostile-hyperalloc; alloc 256M; verify"},
                    30'000ms);
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("12 of 12 bad records refused, record outside RAM refused, valid record accepted, second refused"));
  CHECK_THAT(r.err, Catch::Contains("overlaps protected guest memory"));
  CHECK_THAT(r.err, Catch::Contains("install of a frame outside the zone"));
  CHECK_THAT(r.out, Catch::Contains("verify: ok"));
}

TEST_CASE("hyperalloc: auto-reclaim switched on, given a new period and switched off at run time through the API", "[kvm]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  std::optional<double> seconds_to_low;
  std::optional<uint64_t> rss_after_off_alloc, rss_later;
  ProcessResult on, period, off, cont1;
  std::optional<nlohmann::json> st_period, st_off;
  auto r = run_hvmm({"run", "--mem", "2G", "--cpus", "1", "--quiet", "--api-sock", sock, "--workload",
                     "alloc 1G; free; barrier; alloc 512M; free; echo freed again; barrier"},
                    90'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 60'000ms)) return;
                      on = ctl(sock, {"auto-reclaim", "on", "100ms"});
                      auto t0 = std::chrono::steady_clock::now();
                      while (std::chrono::steady_clock::now() - t0 < 15s && c.running()) {
                        if (auto rss = c.rss_kib(); rss && *rss < 512 * kMiB) {
                          seconds_to_low = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                          break;
                        }
                        std::this_thread::sleep_for(50ms);
                      }
                      period = ctl(sock, {"auto-reclaim", "on", "200ms"});
                      st_period = ctl_status(sock);
                      off = ctl(sock, {"auto-reclaim", "off"});
                      st_off = ctl_status(sock);
                      cont1 = ctl(sock, {"continue"});
                      // The guest allocates and frees 512 MiB again; with auto-reclaim off it stays.
                      if (!c.wait_for_stdout("freed again", 60'000ms)) return;
                      rss_after_off_alloc = c.rss_kib();
                      std::this_thread::sleep_for(2s);  // 10 periods of the old auto-reclaim
                      rss_later = c.rss_kib();
                      ctl(sock, {"shutdown"});
                    });
  INFO(r.describe());
  INFO("on: " << on.describe() << "\nperiod: " << period.describe() << "\noff: " << off.describe());
  CHECK(on.status == 0);
  REQUIRE(seconds_to_low.has_value());  // switched on at run time, it took the freed 1 GiB back
  CHECK(period.status == 0);
  REQUIRE(st_period.has_value());
  CHECK((*st_period)["detail"]["auto_reclaim"]["period_ms"] == 200);
  CHECK(off.status == 0);
  REQUIRE(st_off.has_value());
  CHECK_FALSE((*st_off)["detail"].contains("auto_reclaim"));
  REQUIRE(rss_after_off_alloc.has_value());
  REQUIRE(rss_later.has_value());
  CHECK(*rss_after_off_alloc > 400 * kMiB);
  CHECK(*rss_later > *rss_after_off_alloc - 64 * kMiB);  // nothing taken back any more
  CHECK(r.exited);
  CHECK(r.status == 0);
}
