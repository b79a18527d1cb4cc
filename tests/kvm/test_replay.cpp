// The trace replay (hvmm run --trace, the guest's `replay` step) and the buddy allocator
// (--guest-alloc buddy) under KVM: a tiny trace reaches the expected in-use memory at each phase,
// malformed traces are refused, the buddy allocator holds all memory and gives it back.
#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <optional>
#include <regex>
#include <thread>

#include "abi/trace.hpp"
#include "hvmm_env.hpp"

using namespace hvmm::testing;
using namespace std::chrono_literals;
namespace tr = hvmm::abi::trace;

namespace {
constexpr uint64_t kMiB = 1024;  // rss_kib() is in KiB

struct Ev {
  uint32_t t_ms;
  tr::Kind kind;
  uint16_t arg;
  uint32_t slot, kib;
};

std::string trace_bytes(const std::vector<Ev>& evs, uint32_t slots) {
  tr::Header h{};
  memcpy(h.magic, tr::kMagic, sizeof h.magic);
  h.version = tr::kVersion;
  h.header_bytes = sizeof h;
  h.event_bytes = sizeof(tr::Event);
  h.event_count = static_cast<uint32_t>(evs.size());
  h.slots = slots;
  h.duration_ms = evs.back().t_ms;
  std::string out(reinterpret_cast<const char*>(&h), sizeof h);
  for (const Ev& e : evs) {
    tr::Event x{e.t_ms, static_cast<uint16_t>(e.kind), e.arg, e.slot, e.kib};
    out.append(reinterpret_cast<const char*>(&x), sizeof x);
  }
  return out;
}

Ev phase(uint32_t t, tr::Phase p) { return {t, tr::Kind::kPhase, static_cast<uint16_t>(p), 0, 0}; }

// 5.5 s: a 16 and an 8 MiB process during the build beside a 32 MiB cache, `clean` leaves 8 MiB of
// cache, drop_caches none. Every event is at least 500 ms away from a phase mark: first touch of fresh
// memory can take a few hundred ms on a nested host, and CPU 0 prints a mark only after its own work.
std::vector<Ev> tiny() {
  return {phase(0, tr::Phase::kBuild),
          {100, tr::Kind::kProcStart, 0, 0, 16 << 10},
          {200, tr::Kind::kCache, 0, 0, 32 << 10},
          {300, tr::Kind::kProcStart, 0, 1, 8 << 10},
          {1000, tr::Kind::kProcEnd, 0, 0, 0},
          phase(2000, tr::Phase::kDelay),
          {2500, tr::Kind::kProcEnd, 0, 1, 0},
          phase(3000, tr::Phase::kClean),
          {3500, tr::Kind::kCache, 0, 0, 8 << 10},
          phase(4000, tr::Phase::kIdle),
          phase(4500, tr::Phase::kDropCaches),
          {5000, tr::Kind::kCache, 0, 0, 0},
          phase(5500, tr::Phase::kEnd)};
}

// The replay's own bytes (replay=) in the sample printed at each phase mark.
std::map<std::string, uint64_t> held_at_phases(const std::string& out) {
  std::map<std::string, uint64_t> m;
  std::regex re(R"(replay: phase (\S+) host_ns=\d+ t_ms=\d+\nreplay: sample host_ns=\d+ t_ms=\d+ inuse=\d+ replay=(\d+))");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it)
    m[(*it)[1]] = std::stoull((*it)[2]);
  return m;
}

void check_tiny(const std::vector<std::string>& extra, uint64_t mem_scale) {
  TempFile f("tiny.trace", trace_bytes(tiny(), 2));
  std::vector<std::string> args{"run", "--mem", "1G", "--cpus", "2", "--quiet", "--trace", f.path(), "--workload",
                                "replay 1 " + std::to_string(mem_scale) + " 100ms"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = run_hvmm(args, 30'000ms);
  INFO(r.describe());
  REQUIRE(r.exited);
  REQUIRE(r.status == 0);
  auto held = held_at_phases(r.out);
  const uint64_t MiB = 1 << 20, s = mem_scale;
  // Expected: build 0; delay the 8 MiB process + 32 MiB cache; clean 32 MiB; idle and drop_caches
  // 8 MiB; end 0. Exact in pages; the tolerance (1 %) is for rounding the cache's share per CPU.
  const std::map<std::string, uint64_t> want{{"build", 0},          {"delay", (32 + 8) * MiB * s},
                                             {"clean", 32 * MiB * s}, {"idle", 8 * MiB * s},
                                             {"drop_caches", 8 * MiB * s}, {"end", 0}};
  for (auto& [p, bytes] : want) {
    INFO("phase " << p);
    REQUIRE(held.count(p));
    CHECK(held[p] >= bytes - bytes / 100);
    CHECK(held[p] <= bytes + bytes / 100);
  }
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex(R"(replay: done host_ns=\d+ wall_ms=(\d+) max_lag_ms=\d+ oom_pages=0)")));
  CHECK(std::stoul(m[1]) >= 5500);  // 5.5 s of trace at time scale 1
  CHECK(std::stoul(m[1]) < 15'000);
}

void check_refused(const std::string& trace, const std::string& want_line) {
  TempFile f("bad.trace", trace);
  auto r = run_hvmm({"run", "--mem", "256M", "--quiet", "--trace", f.path(), "--workload", "echo started; replay 1 1"});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 2);
  CHECK(r.out.find(want_line) != std::string::npos);
  CHECK(r.out.find("started") == std::string::npos);  // refused before any step ran
}
}  // namespace

TEST_CASE("replay: a tiny trace reaches the expected in-use memory at every phase (LLFree)", "[kvm][replay]") {
  HVMM_REQUIRE_KVM();
  check_tiny({"--reclaim", "none"}, 1);
}

TEST_CASE("replay: memory scale 2 doubles every level (buddy allocator, free page reporting)", "[kvm][replay]") {
  HVMM_REQUIRE_KVM();
  check_tiny({"--reclaim", "balloon", "--auto-reclaim", "--guest-alloc", "buddy"}, 2);
}

TEST_CASE("replay: malformed traces and a missing trace are refused before the workload starts", "[kvm][replay]") {
  HVMM_REQUIRE_KVM();
  std::string bad_magic = trace_bytes(tiny(), 2);
  bad_magic[0] = 'X';
  check_refused(bad_magic, "not an hvmm trace");
  auto evs = tiny();
  evs[4] = {1000, tr::Kind::kProcEnd, 0, 1, 0};  // ends slot 1 twice, never slot 0
  check_refused(trace_bytes(evs, 2), "process end in a free slot");
  check_refused(trace_bytes(tiny(), 1), "slot out of range");
  std::string cut = trace_bytes(tiny(), 2);
  check_refused(cut.substr(0, cut.size() - 16), "event count does not fit");
  evs = tiny();
  std::swap(evs[7], evs[9]);  // idle before clean
  evs[7].t_ms = 3000, evs[9].t_ms = 4000;
  check_refused(trace_bytes(evs, 2), "phase out of order");
  auto r = run_hvmm({"run", "--mem", "256M", "--quiet", "--workload", "replay 1 1"});
  CHECK(r.status == 2);
  CHECK(r.out.find("no trace") != std::string::npos);
}

TEST_CASE("buddy: alloc all, verify, free all, twice, with 4 KiB and 2 MiB blocks", "[kvm][buddy]") {
  HVMM_REQUIRE_KVM();
  auto r = run_hvmm({"run", "--mem", "512M", "--cpus", "2", "--reclaim", "none", "--guest-alloc", "buddy", "--quiet",
                     "--workload", "alloc all; verify; free all; stats; alloc all; verify; free all; alloc-huge all; "
                     "verify; free all; stats"});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 0);
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex(R"(alloc: (\d+) bytes in 4 KiB blocks)")));
  CHECK(std::stoull(m[1]) > (480ull << 20));  // nearly all of 512 MiB
  CHECK(r.out.find("FAILED") == std::string::npos);
  // Everything came back, merged: the free 2 MiB blocks after the last free equal those after the first.
  std::vector<std::string> huge;
  std::regex re(R"(huge_free=(\d+))");
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), re); it != std::sregex_iterator(); ++it) huge.push_back((*it)[1]);
  REQUIRE(huge.size() == 2);
  CHECK(huge[0] == huge[1]);
  CHECK(std::stoull(huge[0]) > 240);
}

TEST_CASE("buddy: free page reporting brings RSS below 0.5 GiB within 10 s of a free", "[kvm][buddy]") {
  HVMM_REQUIRE_KVM();
  for (const char* mech : {"balloon", "balloon-huge"}) {
    INFO(mech);
    std::optional<uint64_t> peak, low;
    auto r = run_hvmm({"run", "--mem", "4G", "--cpus", "2", "--reclaim", mech, "--auto-reclaim", "--guest-alloc", "buddy",
                       "--quiet", "--workload", "alloc 2G; free; sleep 20s"},
                      60'000ms, [&](ChildProcess& c) {
                        if (!c.wait_for_stdout("free:", 40'000ms)) return;
                        const auto freed = std::chrono::steady_clock::now();
                        peak = c.rss_kib();
                        while (std::chrono::steady_clock::now() - freed < 10s) {
                          auto rss = c.rss_kib();
                          if (!rss) break;
                          if (*rss < 512 * kMiB) {
                            low = rss;
                            break;
                          }
                          std::this_thread::sleep_for(100ms);
                        }
                      });
    INFO(r.describe());
    REQUIRE(peak.has_value());
    CHECK(*peak > 1024 * kMiB);  // touched (reporting may already have taken some back while it ran)
    CHECK(low.has_value());
    CHECK(r.status == 0);
  }
}

TEST_CASE("buddy: refused with hyperalloc and virtio-mem in one line, exit 2", "[kvm][buddy]") {
  for (const char* mech : {"hyperalloc", "virtio-mem"}) {
    auto r = run_hvmm({"run", "--mem", "1G", "--reclaim", mech, "--guest-alloc", "buddy", "--workload", "info"});
    INFO(r.describe());
    CHECK(r.status == 2);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find("needs LLFree") != std::string::npos);
    CHECK(r.out.empty());
  }
}
