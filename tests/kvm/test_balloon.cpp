// --reclaim balloon end to end: the virtio-balloon device, the guest's balloon driver on its
// service vCPU, resize through the control socket, deflate-on-OOM and free page reporting.
#include <catch2/catch.hpp>

#include <optional>
#include <thread>

#include "ctl.hpp"
#include "hvmm_env.hpp"

using namespace hvmm::testing;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kMiB = 1024;  // in KiB, like VmRSS
constexpr uint64_t kGiB = 1024 * kMiB;

// `balloon_actual_bytes` of `hvmm ctl status`; nullopt when the VM did not answer.
std::optional<uint64_t> balloon_actual_bytes(const std::string& sock) {
  const auto status = ctl_status(sock);
  if (!status) return std::nullopt;
  const auto detail = status->find("detail");
  if (detail == status->end() || !detail->is_object()) return std::nullopt;
  const auto it = detail->find("balloon_actual_bytes");
  if (it == detail->end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<uint64_t>();
}

}  // namespace

TEST_CASE("balloon: resize 8G -> 2G frees host memory, contents survive, resize 8G gives it back", "[kvm][balloon]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  std::optional<uint64_t> rss_before, rss_small, balloon_bytes;
  std::string resize_small_out, resize_big_out, continue_out;
  bool resized_small = false, resized_big = false, continued = false;
  // Hold 1 GiB with a pattern, touch and free 5 GiB more, then wait at the barrier for the test.
  auto r = run_hvmm({"run", "--mem", "8G", "--cpus", "2", "--reclaim", "balloon", "--quiet", "--api-sock", sock, "--workload",
                     "alloc 1G; alloc 5G; free; barrier; verify; alloc 3G; verify"},
                    85'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 60'000ms)) return;
                      rss_before = c.rss_kib();
                      auto small = ctl(sock, {"resize", "2G"});
                      resize_small_out = small.describe();
                      resized_small = small.exited && small.status == 0;
                      balloon_bytes = balloon_actual_bytes(sock);
                      rss_small = c.rss_kib();
                      auto big = ctl(sock, {"resize", "8G"});
                      resize_big_out = big.describe();
                      resized_big = big.exited && big.status == 0;
                      auto cont = ctl(sock, {"continue"}, 10'000ms);
                      continue_out = cont.describe();
                      continued = cont.exited && cont.status == 0;
                    });
  INFO(r.describe());
  INFO("resize 2G: " << resize_small_out);
  INFO("resize 8G: " << resize_big_out);
  INFO("continue: " << continue_out);
  REQUIRE(rss_before.has_value());
  CHECK(*rss_before > 5 * kGiB);  // the guest really touched 6 GiB
  CHECK(resized_small);
  REQUIRE(balloon_bytes.has_value());
  CHECK(*balloon_bytes == 6ull << 30);
  REQUIRE(rss_small.has_value());
  CHECK(*rss_small < 1536 * kMiB);
  CHECK(resized_big);
  CHECK(continued);
  REQUIRE(r.exited);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("balloon: 6144 MiB in the balloon (target 6144 MiB, reached)"));
  CHECK_THAT(r.out, Catch::Contains("balloon: 0 MiB in the balloon (target 0 MiB, reached)"));
  CHECK_THAT(r.out, !Catch::Contains("FAILED"));
}

TEST_CASE("balloon: deflate-on-OOM lets the guest allocate past its shrunk size, as Linux does", "[kvm][balloon]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  std::string resize_out, too_big_out;
  bool resized = false, too_big_refused = false;
  std::optional<uint64_t> balloon_after;
  auto r = run_hvmm({"run", "--mem", "1G", "--cpus", "1", "--reclaim", "balloon", "--quiet", "--api-sock", sock, "--workload",
                     "barrier; alloc 800M; verify; barrier"},
                    60'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 30'000ms)) return;
                      auto too_big = ctl(sock, {"resize", "2G"});
                      too_big_out = too_big.describe();
                      too_big_refused = too_big.exited && too_big.status != 0;
                      auto small = ctl(sock, {"resize", "256M"});  // balloon: 768 MiB
                      resize_out = small.describe();
                      resized = small.exited && small.status == 0;
                      ctl(sock, {"continue"}, 10'000ms);
                      // Second barrier: the allocation is done; look at the balloon before exit.
                      const auto deadline = std::chrono::steady_clock::now() + 30s;
                      while (std::chrono::steady_clock::now() < deadline &&
                             c.out_so_far().find("barrier: waiting", c.out_so_far().find("verify:")) == std::string::npos)
                        std::this_thread::sleep_for(50ms);
                      balloon_after = balloon_actual_bytes(sock);
                      ctl(sock, {"continue"}, 10'000ms);
                    });
  INFO(r.describe());
  INFO("resize 2G: " << too_big_out);
  INFO("resize 256M: " << resize_out);
  CHECK(too_big_refused);
  CHECK(resized);
  REQUIRE(r.exited);
  CHECK(r.status == 0);  // 800 MiB allocated and verified although only 256 MiB were left
  CHECK_THAT(r.out, Catch::Contains("verify: ok"));
  REQUIRE(balloon_after.has_value());
  CHECK(*balloon_after < 768ull << 20);  // the balloon gave pages back under OOM
}

TEST_CASE("balloon: --auto-reclaim (free page reporting) brings RSS below 0.5 GiB within 10 s of a free", "[kvm][balloon]") {
  HVMM_REQUIRE_KVM();
  std::optional<uint64_t> peak, low;
  std::chrono::duration<double> took{};
  auto r = run_hvmm({"run", "--mem", "8G", "--cpus", "2", "--reclaim", "balloon", "--auto-reclaim", "--quiet", "--workload",
                     "alloc 2G; free; sleep 20s"},
                    60'000ms, [&](ChildProcess& c) {
                      // The peak while the guest holds 2 GiB: after the free, reporting may
                      // already have begun by the time a loaded machine lets this thread look.
                      if (!c.wait_for_stdout("alloc:", 40'000ms)) return;
                      peak = c.rss_kib();
                      if (!c.wait_for_stdout("free:", 40'000ms)) return;
                      const auto freed = std::chrono::steady_clock::now();
                      while (std::chrono::steady_clock::now() - freed < 10s) {
                        auto rss = c.rss_kib();
                        if (!rss) break;
                        if (*rss < 512 * kMiB) {
                          low = rss;
                          took = std::chrono::steady_clock::now() - freed;
                          break;
                        }
                        std::this_thread::sleep_for(100ms);
                      }
                    });
  INFO(r.describe());
  REQUIRE(peak.has_value());
  CHECK(*peak > 1536 * kMiB);  // 2 GiB were touched
  REQUIRE(low.has_value());    // below 0.5 GiB within 10 s
  INFO("RSS fell to " << *low << " KiB after " << took.count() << " s");
  CHECK(r.exited);
  CHECK(r.status == 0);
}

TEST_CASE("balloon: without --auto-reclaim reported pages are only acknowledged", "[kvm][balloon]") {
  HVMM_REQUIRE_KVM();
  std::optional<uint64_t> rss;
  auto r = run_hvmm({"run", "--mem", "2G", "--cpus", "1", "--reclaim", "balloon", "--quiet", "--workload", "alloc 1G; free; sleep 5s"},
                    40'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("free:", 30'000ms)) return;
                      std::this_thread::sleep_for(4s);  // past the 2 s reporting delay
                      rss = c.rss_kib();
                    });
  INFO(r.describe());
  REQUIRE(rss.has_value());
  CHECK(*rss > 768 * kMiB);  // still resident: no automatic reclamation was asked for
  CHECK(r.status == 0);
}

TEST_CASE("balloon: --cpus 64 boots with its service vCPU (65 in all) and the balloon resizes", "[kvm][balloon]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  std::string resize_out;
  bool resized = false;
  std::optional<nlohmann::json> status;
  // The service vCPU is the 65th: the CPU limit (abi/limits.hpp) counts it, so the guest runs the
  // balloon driver on it instead of halting it.
  auto r = run_hvmm({"run", "--mem", "1G", "--cpus", "64", "--reclaim", "balloon", "--quiet", "--api-sock", sock,
                     "--workload", "alloc 256M; alloc 256M; free; barrier; verify"},
                    80'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 60'000ms)) return;
                      auto small = ctl(sock, {"resize", "512M"});
                      resize_out = small.describe();
                      resized = small.exited && small.status == 0;
                      status = ctl_status(sock);
                      ctl(sock, {"continue"}, 10'000ms);
                    });
  INFO(r.describe());
  INFO("resize 512M: " << resize_out);
  CHECK(resized);
  REQUIRE(status.has_value());
  CHECK((*status)["usable_bytes"] == 512ull << 20);
  CHECK((*status)["detail"]["balloon_actual_bytes"] == 512ull << 20);
  CHECK((*status)["detail"]["driver_ok"] == true);
  REQUIRE((*status)["vcpu_cpu"].size() == 65);
  CHECK((*status)["vcpu_cpu"][64]["service"] == true);
  REQUIRE(r.exited);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("verify: ok"));
}

TEST_CASE("balloon: resize 2G of an 8 GiB guest that touched and freed 3 GiB leaves less than 0.2 GiB resident", "[kvm][balloon]") {
  // The residency gap: the driver's list of ballooned frames used to sit in 4 KiB pages inside the
  // very 2 MiB frames it ballooned, so the host faulted ~1 GiB of them back in (see
  // guest/frame_list.hpp). Now its list pages live in 2 MiB blocks of their own.
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  std::optional<uint64_t> rss_touched, rss_small;
  std::string resize_out;
  bool resized = false;
  auto r = run_hvmm({"run", "--mem", "8G", "--cpus", "2", "--reclaim", "balloon", "--quiet", "--api-sock", sock, "--workload",
                     "alloc 3G; free; barrier"},
                    85'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 60'000ms)) return;
                      rss_touched = c.rss_kib();
                      auto small = ctl(sock, {"resize", "2G"});
                      resize_out = small.describe();
                      resized = small.exited && small.status == 0;
                      std::this_thread::sleep_for(2s);  // what came back later would show now
                      rss_small = c.rss_kib();
                      ctl(sock, {"continue"}, 10'000ms);
                    });
  INFO(r.describe());
  INFO("resize 2G: " << resize_out);
  REQUIRE(rss_touched.has_value());
  CHECK(*rss_touched > 2 * kGiB);  // the guest really touched 3 GiB
  CHECK(resized);
  REQUIRE(rss_small.has_value());
  CHECK(*rss_small < 200 * kMiB);
  REQUIRE(r.exited);
  CHECK(r.status == 0);
}

// --- --reclaim balloon-huge: the balloon with 2 MiB pages (VIRTIO_BALLOON_F_HVMM_HUGE_PAGES) ---

namespace {

// Waits until `needle` has appeared `n` times on the child's stdout; false after `limit`.
bool wait_for_nth(ChildProcess& c, const std::string& needle, size_t n, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const std::string out = c.out_so_far();
    size_t seen = 0;
    for (size_t at = out.find(needle); at != std::string::npos; at = out.find(needle, at + 1)) ++seen;
    if (seen >= n) return true;
    if (std::chrono::steady_clock::now() > deadline || !c.running()) return false;
    std::this_thread::sleep_for(50ms);
  }
}

// Polls RSS for up to `limit` after a free; the first value below `below_kib`, and how long it took.
struct Fall {
  std::optional<uint64_t> rss_kib;
  std::chrono::duration<double> took{};
};
Fall wait_for_rss_below(ChildProcess& c, uint64_t below_kib, std::chrono::seconds limit) {
  const auto freed = std::chrono::steady_clock::now();
  Fall f;
  while (std::chrono::steady_clock::now() - freed < limit) {
    const auto rss = c.rss_kib();
    if (!rss) break;
    if (*rss < below_kib) {
      f.rss_kib = rss;
      f.took = std::chrono::steady_clock::now() - freed;
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  return f;
}

}  // namespace

TEST_CASE("balloon-huge: resize 8G -> 2G in 2 MiB pages frees host memory, contents survive, resize 8G gives it back",
          "[kvm][balloon]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  std::optional<uint64_t> rss_before, rss_small;
  std::optional<nlohmann::json> status_small, status_big;
  std::string resize_small_out, resize_big_out, continue_out;
  bool resized_small = false, resized_big = false, continued = false;
  // Hold 1 GiB with a pattern, touch and free 5 GiB more, then wait at the barrier for the test.
  auto r = run_hvmm({"run", "--mem", "8G", "--cpus", "2", "--reclaim", "balloon-huge", "--quiet", "--api-sock", sock,
                     "--workload", "alloc 1G; alloc 5G; free; barrier; verify; alloc 3G; verify"},
                    85'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 60'000ms)) return;
                      rss_before = c.rss_kib();
                      auto small = ctl(sock, {"resize", "2G"});
                      resize_small_out = small.describe();
                      resized_small = small.exited && small.status == 0;
                      status_small = ctl_status(sock);
                      rss_small = c.rss_kib();
                      auto big = ctl(sock, {"resize", "8G"});
                      resize_big_out = big.describe();
                      resized_big = big.exited && big.status == 0;
                      status_big = ctl_status(sock);
                      auto cont = ctl(sock, {"continue"}, 10'000ms);
                      continue_out = cont.describe();
                      continued = cont.exited && cont.status == 0;
                    });
  INFO(r.describe());
  INFO("resize 2G: " << resize_small_out);
  INFO("resize 8G: " << resize_big_out);
  INFO("continue: " << continue_out);
  REQUIRE(rss_before.has_value());
  CHECK(*rss_before > 5 * kGiB);  // the guest really touched 6 GiB
  CHECK(resized_small);
  REQUIRE(status_small.has_value());
  INFO("status after resize 2G: " << status_small->dump());
  CHECK((*status_small)["mechanism"] == "balloon-huge");
  CHECK((*status_small)["usable_bytes"] == 2ull << 30);
  CHECK((*status_small)["target_bytes"] == 2ull << 30);
  CHECK((*status_small)["detail"]["balloon_actual_bytes"] == 6ull << 30);
  CHECK((*status_small)["detail"]["page_bytes"] == 2ull << 20);
  CHECK((*status_small)["detail"]["inflated_pages"] == 3072);  // 2 MiB units
  CHECK((*status_small)["detail"]["invalid_pfns"] == 0);
  REQUIRE(rss_small.has_value());
  CHECK(*rss_small < 1536 * kMiB);
  CHECK(resized_big);
  REQUIRE(status_big.has_value());
  CHECK((*status_big)["usable_bytes"] == 8ull << 30);
  CHECK((*status_big)["detail"]["balloon_actual_bytes"] == 0);
  CHECK(continued);
  REQUIRE(r.exited);
  CHECK(r.status == 0);  // verify of the kept 1 GiB and of 3 GiB more, in the grown guest
  CHECK_THAT(r.out, Catch::Contains("balloon: 6144 MiB in the balloon (target 6144 MiB, reached)"));
  CHECK_THAT(r.out, Catch::Contains("balloon: 0 MiB in the balloon (target 0 MiB, reached)"));
  CHECK_THAT(r.out, Catch::Contains("alloc: 3221225472 bytes"));
  CHECK_THAT(r.out, !Catch::Contains("FAILED"));
}

TEST_CASE("balloon-huge: --auto-reclaim (free page reporting) follows a falling demand within 10 s of each free",
          "[kvm][balloon]") {
  HVMM_REQUIRE_KVM();
  // Demand 5 GiB, then 2 GiB, then 1 GiB: after each free host RSS must come below 1.5 x what the
  // guest still uses (what it keeps; the kernel and the driver add a few MiB).
  std::optional<uint64_t> peak;
  Fall to_two, to_one;
  auto r = run_hvmm({"run", "--mem", "8G", "--cpus", "2", "--reclaim", "balloon-huge", "--auto-reclaim", "--quiet",
                     "--workload", "alloc 1G; alloc 1G; alloc 3G; free; sleep 12s; free; sleep 12s"},
                    85'000ms, [&](ChildProcess& c) {
                      if (!wait_for_nth(c, "free:", 1, 50'000ms)) return;
                      peak = c.rss_kib();
                      to_two = wait_for_rss_below(c, 3 * kGiB, 10s);  // 1.5 x 2 GiB
                      if (!wait_for_nth(c, "free:", 2, 20'000ms)) return;
                      to_one = wait_for_rss_below(c, 1536 * kMiB, 10s);  // 1.5 x 1 GiB
                    });
  INFO(r.describe());
  REQUIRE(peak.has_value());
  CHECK(*peak > 4 * kGiB);  // 5 GiB were touched
  REQUIRE(to_two.rss_kib.has_value());
  INFO("RSS fell to " << *to_two.rss_kib << " KiB " << to_two.took.count() << " s after the first free");
  REQUIRE(to_one.rss_kib.has_value());
  INFO("RSS fell to " << *to_one.rss_kib << " KiB " << to_one.took.count() << " s after the second free");
  CHECK(r.exited);
  CHECK(r.status == 0);
}

TEST_CASE("balloon-huge: deflate-on-OOM gives 2 MiB blocks back so the guest can allocate past its shrunk size",
          "[kvm][balloon]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  std::string resize_out;
  bool resized = false;
  std::optional<nlohmann::json> status_after;
  auto r = run_hvmm({"run", "--mem", "1G", "--cpus", "1", "--reclaim", "balloon-huge", "--quiet", "--api-sock", sock,
                     "--workload", "barrier; alloc 800M; verify; barrier"},
                    60'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 30'000ms)) return;
                      auto small = ctl(sock, {"resize", "256M"});  // balloon: 384 blocks of 2 MiB
                      resize_out = small.describe();
                      resized = small.exited && small.status == 0;
                      ctl(sock, {"continue"}, 10'000ms);
                      if (!wait_for_nth(c, "barrier: waiting", 2, 30'000ms)) return;
                      status_after = ctl_status(sock);
                      ctl(sock, {"continue"}, 10'000ms);
                    });
  INFO(r.describe());
  INFO("resize 256M: " << resize_out);
  CHECK(resized);
  REQUIRE(r.exited);
  CHECK(r.status == 0);  // 800 MiB allocated and verified although only 256 MiB were left
  CHECK_THAT(r.out, Catch::Contains("verify: ok"));
  REQUIRE(status_after.has_value());
  INFO("status: " << status_after->dump());
  const auto actual = (*status_after)["detail"]["balloon_actual_bytes"].get<uint64_t>();
  CHECK(actual < 768ull << 20);  // the balloon gave blocks back under OOM
  CHECK(actual % (2ull << 20) == 0);
  CHECK((*status_after)["detail"]["deflated_pages"].get<uint64_t>() > 0);
}
