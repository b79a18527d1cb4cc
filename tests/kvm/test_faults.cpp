// Faults around a running VM (issue 13): SIGTERM/SIGINT while a resize waits for the guest or while
// auto-reclaim runs (a clean exit within 1 s, the socket removed), and a guest whose balloon driver
// cannot answer (a bounded wait and a clear error).
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <optional>
#include <thread>

#include "ctl.hpp"
#include "hvmm_env.hpp"

using namespace hvmm::testing;
using namespace std::chrono_literals;

namespace {

bool exists(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

struct Interrupted {
  ProcessResult vm;
  std::string resize_out;      // what the resize client got
  bool resize_returned = false;
  std::chrono::duration<double> exit_after{};  // from the signal to the VM's end
  bool socket_left = true;
};

// Boots `args` (which must include --api-sock sock), waits for `ready` on stdout, starts `hvmm ctl
// resize size` (if any) in the background, sends `sig` after `delay`, and measures how long hvmm
// takes to exit.
Interrupted signal_during(std::vector<std::string> args, const std::string& sock, const std::string& ready,
                          std::optional<std::string> size, int sig, std::chrono::milliseconds delay) {
  Interrupted out;
  out.vm = run_hvmm(args, 60'000ms, [&](ChildProcess& c) {
    if (!c.wait_for_stdout(ready, 40'000ms)) return;
    std::atomic<bool> returned{false};
    std::thread client;
    if (size)
      client = std::thread([&] {
        out.resize_out = ctl(sock, {"resize", *size}, 30'000ms).describe();
        returned = true;
      });
    std::this_thread::sleep_for(delay);
    const auto sent = std::chrono::steady_clock::now();
    ::kill(c.pid(), sig);
    while (c.running() && std::chrono::steady_clock::now() - sent < 20s) std::this_thread::sleep_for(5ms);
    out.exit_after = std::chrono::steady_clock::now() - sent;
    if (client.joinable()) client.join();
    out.resize_returned = returned;
  });
  out.socket_left = exists(sock);
  return out;
}

void check_clean_exit(const Interrupted& r, const char* signame) {
  INFO(r.vm.describe());
  INFO("resize client: " << r.resize_out);
  REQUIRE(r.vm.exited);
  CHECK(r.vm.status == 130);
  CHECK_THAT(r.vm.err, Catch::Contains(std::string("stopped by ") + signame));
  CHECK(r.exit_after < 1s);
  CHECK_FALSE(r.socket_left);
}

}  // namespace

// Issue 13, defect 3: the balloon's resize loop never looked at the VM stopping, so SIGTERM took
// ~10 s (its stall timeout) and the client was told the guest was out of memory.
TEST_CASE("faults: SIGTERM during a balloon resize that waits for the guest: exit within 1 s, client told why",
          "[kvm][faults]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  // 75% of RAM in use: the balloon cannot reach 240 MiB and the resize waits.
  auto r = signal_during({"run", "--mem", "256M", "--mem-min", "16M", "--cpus", "1", "--reclaim", "balloon", "--quiet", "--api-sock", sock,
                          "--workload", "alloc 75%; sleep 30s"},
                         sock, "alloc:", "16M", SIGTERM, 1500ms);
  check_clean_exit(r, "SIGTERM");
  CHECK(r.resize_returned);
  CHECK_THAT(r.resize_out, Catch::Contains("the VM is stopping"));
}

TEST_CASE("faults: SIGINT during a balloon-huge resize: exit within 1 s", "[kvm][faults]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  auto r = signal_during({"run", "--mem", "256M", "--mem-min", "16M", "--cpus", "1", "--reclaim", "balloon-huge", "--quiet", "--api-sock",
                          sock, "--workload", "alloc 75%; sleep 30s"},
                         sock, "alloc:", "16M", SIGINT, 1500ms);
  check_clean_exit(r, "SIGINT");
  CHECK(r.resize_returned);
}

TEST_CASE("faults: SIGTERM during a virtio-mem resize that waits for the guest: exit within 1 s", "[kvm][faults]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  // The plugged memory is in use: the guest cannot unplug down to its boot memory.
  auto r = signal_during({"run", "--mem", "1G", "--cpus", "1", "--reclaim", "virtio-mem", "--quiet", "--api-sock", sock,
                          "--workload", "alloc 700M; sleep 30s"},
                         sock, "alloc:", "256M", SIGTERM, 1500ms);
  check_clean_exit(r, "SIGTERM");
  CHECK(r.resize_returned);
  CHECK_THAT(r.resize_out, Catch::Contains("the VM is stopping"));
}

TEST_CASE("faults: SIGINT during hyperalloc resizes and auto-reclaim: exit within 1 s", "[kvm][faults]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  auto r = signal_during({"run", "--mem", "1G", "--cpus", "2", "--auto-reclaim=100ms", "--quiet", "--api-sock", sock,
                          "--workload", "churn 30s"},
                         sock, "", std::nullopt, SIGINT, 3000ms);
  check_clean_exit(r, "SIGINT");
}

TEST_CASE("faults: a balloon driver that cannot answer: the resize gives up in bounded time with a clear error",
          "[kvm][faults]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  ProcessResult resize;
  std::chrono::duration<double> took{};
  auto r = run_hvmm({"run", "--mem", "256M", "--mem-min", "16M", "--cpus", "1", "--reclaim", "balloon", "--quiet", "--api-sock", sock,
                     "--workload", "alloc 75%; sleep 40s"},
                    60'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("alloc:", 40'000ms)) return;
                      const auto t0 = std::chrono::steady_clock::now();
                      resize = ctl(sock, {"resize", "16M"}, 40'000ms);
                      took = std::chrono::steady_clock::now() - t0;
                      CHECK(ctl_status(sock).has_value());  // still answering
                      ctl(sock, {"shutdown"}, 10'000ms);
                    });
  INFO(r.describe());
  INFO(resize.describe());
  REQUIRE(resize.exited);
  CHECK(resize.status != 0);
  CHECK_THAT(resize.err, Catch::Contains("the guest is out of memory or its driver is stuck"));
  CHECK(took < 25s);  // the stall timeout (10 s) and the deadline (10 s + 1 s per 256 MiB) bound it
  REQUIRE(r.exited);
  CHECK(r.status == 0);
}

// Issue 13, defect 7: `--mem 1T` started without a word on a 24 GiB host.
TEST_CASE("faults: --mem beyond what the host can back starts with a warning that names --mem-limit", "[kvm][faults]") {
  HVMM_REQUIRE_KVM();
  // 64 GiB: more than this 24 GiB machine has, and quicker to set up than 1 TiB on a busy host.
  auto r = run_hvmm({"run", "--mem", "64G", "--cpus", "1", "--quiet", "--workload", "exit 0"}, 60'000ms);
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 0);
  CHECK_THAT(r.err, Catch::Contains("hvmm: warning: --mem 64.0 GiB is more than this host can back now"));
  CHECK_THAT(r.err, Catch::Contains("--mem-limit"));
}

// Issue 13, defect 7: with --mem-limit a guest that wants more than the limit runs out of memory
// inside (a clean failure of its step) instead of growing hvmm until the host's OOM killer ends it.
TEST_CASE("faults: --mem-limit: the guest boots shrunk to it, resizes above it are refused and counted, and an "
          "allocation beyond it is the guest's own out-of-memory",
          "[kvm][faults]") {
  HVMM_REQUIRE_KVM();
  for (const char* mechanism : {"hyperalloc", "balloon", "balloon-huge", "virtio-mem"}) {
    DYNAMIC_SECTION(mechanism) {
      TempFile dir("unused", "");
      const std::string sock = dir.dir() + "/api.sock";
      std::optional<nlohmann::json> status;
      ProcessResult refused;
      auto r = run_hvmm({"run", "--mem", "1G", "--mem-limit", "256M", "--cpus", "1", "--reclaim", mechanism, "--quiet",
                         "--api-sock", sock, "--workload", "barrier; alloc 512M"},
                        60'000ms, [&](ChildProcess& c) {
                          if (!c.wait_for_stdout("barrier: waiting", 30'000ms)) return;
                          for (int i = 0; i < 200; i++) {  // the limit is applied once the guest's side is ready
                            status = ctl_status(sock);
                            if (status && status->value("/mem_limit/applied"_json_pointer, false)) break;
                            std::this_thread::sleep_for(50ms);
                          }
                          refused = ctl(sock, {"resize", "1G"}, 20'000ms);
                          status = ctl_status(sock);
                          ctl(sock, {"continue"}, 10'000ms);
                        });
      INFO(r.describe());
      INFO(refused.describe());
      REQUIRE(status.has_value());
      INFO(status->dump());
      CHECK(status->value("/mem_limit/applied"_json_pointer, false));
      CHECK(status->value("/mem_limit/refusals"_json_pointer, 0) == 1);
      CHECK(status->value("usable_bytes", uint64_t(0)) <= 256ull << 20);
      CHECK(refused.exited);
      CHECK(refused.status != 0);
      CHECK_THAT(refused.err, Catch::Contains("above the --mem-limit"));
      REQUIRE(r.exited);
      CHECK(r.status == 3);  // the step failed: out of memory in the guest
      CHECK_THAT(r.out, Catch::Contains("alloc 512M: out of memory"));
      CHECK(r.peak_rss_kib < 400u * 1024);
    }
  }
}

// The host side failing (memory/fault_injection.hpp): every 2nd discard fails with ENOMEM and every
// 2nd populate with EFAULT. hvmm counts and reports them, the guest's data survives, the VM runs on
// and stops cleanly.
TEST_CASE("faults: discard and populate failing (ENOMEM, EFAULT): counted, reported, the VM runs on", "[kvm][faults]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  ::setenv("HVMM_FAULT_INJECT", "discard=ENOMEM,populate=EFAULT,every=2", 1);
  std::optional<nlohmann::json> status;
  ProcessResult resize;
  auto r = run_hvmm({"run", "--mem", "1G", "--cpus", "2", "--auto-reclaim=100ms", "--quiet", "--api-sock", sock,
                     "--workload", "alloc 256M; free; sleep 2s; alloc 256M; verify; barrier"},
                    60'000ms, [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 40'000ms)) return;
                      resize = ctl(sock, {"resize", "512M"}, 20'000ms);
                      status = ctl_status(sock);
                      ctl(sock, {"shutdown"}, 10'000ms);
                    });
  ::unsetenv("HVMM_FAULT_INJECT");
  INFO(r.describe());
  INFO(resize.describe());
  REQUIRE(r.exited);
  CHECK(r.status == 0);
  CHECK_THAT(r.err, Catch::Contains("test seam: injecting faults"));
  CHECK_THAT(r.out, Catch::Contains("verify: ok"));
  REQUIRE(status.has_value());
  INFO(status->dump());
  CHECK(status->value("/detail/discard_failures"_json_pointer, uint64_t(0)) > 0);
  CHECK(status->value("/detail/populate_failures"_json_pointer, uint64_t(0)) > 0);
}
