// The command line as a new user meets it (issue 14): --version, unknown subcommands, one-line parse
// errors, refused workloads, --config, the floor, `hvmm ctl`'s exit codes, and a clean shutdown
// reported without the error prefix.
#include <catch2/catch.hpp>

#include "ctl.hpp"
#include "hvmm_env.hpp"

using namespace hvmm::testing;
using namespace std::chrono_literals;

namespace {

constexpr int kUsage = 2;  // abi/exit_status.hpp exit_status::kUsage

void check_usage_error(const ProcessResult& r, const std::string& subject) {
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK(r.status == kUsage);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.err.rfind("hvmm: ", 0) == 0);
  CHECK_THAT(r.err, Catch::Contains(subject));
}

}  // namespace

TEST_CASE("cli: --version, help, and an unknown subcommand that names itself", "[kvm][cli]") {
  const auto v = run_hvmm({"--version"});
  CHECK(v.status == 0);
  CHECK_THAT(v.out, Catch::StartsWith("hvmm 0."));
  const auto help = run_hvmm({"help"});
  CHECK(help.status == 0);
  CHECK_THAT(help.out, Catch::Contains("run"));
  const auto bad = run_hvmm({"rnu", "--mem", "1G"});
  check_usage_error(bad, "unknown subcommand 'rnu'");
  CHECK_THAT(bad.err, Catch::Contains("run, ctl"));
}

TEST_CASE("cli: every parse error is one line", "[kvm][cli]") {
  check_usage_error(run_hvmm({"run", "--cpus", "two"}), "--cpus");
  check_usage_error(run_hvmm({"run", "--no-such-option"}), "--no-such-option");
  check_usage_error(run_hvmm({"ctl", "status"}), "--api-sock");
  check_usage_error(run_hvmm({}), "subcommand");
}

TEST_CASE("cli: refused before boot: an empty workload, an alloc beyond the VM, periods, the floor", "[kvm][cli]") {
  check_usage_error(run_hvmm({"run", "--workload", ""}), "no steps");
  check_usage_error(run_hvmm({"run", "--mem", "8G", "--workload", "info; alloc 100G"}), "alloc 100G");
  check_usage_error(run_hvmm({"run", "--auto-reclaim=2h"}), "10ms .. 1h");
  check_usage_error(run_hvmm({"run", "--auto-reclaim=5"}), "needs a unit");
  check_usage_error(run_hvmm({"run", "--mem", "1G", "--mem-min", "2G"}), "--mem-min");
}

TEST_CASE("cli: --auto-reclaim=1h is accepted, as its message says", "[kvm][cli]") {
  HVMM_REQUIRE_KVM();
  const auto r = run_hvmm({"run", "--mem", "64M", "--quiet", "--auto-reclaim=1h", "--workload", "exit 5"});
  INFO(r.describe());
  CHECK(r.status == 5);
}

TEST_CASE("cli: --config sets options, the command line overrides them, bad keys are one line", "[kvm][cli]") {
  HVMM_REQUIRE_KVM();
  TempFile cfg("vm.json", R"({"mem":"64M","cpus":1,"workload":"info; exit 9","quiet":true})");
  const auto r = run_hvmm({"run", "--config", cfg.path()});
  INFO(r.describe());
  CHECK(r.status == 9);
  CHECK_THAT(r.out, Catch::Contains("cpus=1 mem=67108864"));
  const auto o = run_hvmm({"run", "--config", cfg.path(), "--cpus", "2", "--workload", "info"});
  INFO(o.describe());
  CHECK(o.status == 0);
  CHECK_THAT(o.out, Catch::Contains("cpus=2 mem=67108864"));
  TempFile bad("vm.json", R"({"memory":"1G"})");
  check_usage_error(run_hvmm({"run", "--config", bad.path()}), "unknown key \"memory\"");
  TempFile wrong("vm.json", R"({"cpus":"two"})");
  check_usage_error(run_hvmm({"run", "--config", wrong.path()}), "\"cpus\" must be");
}

TEST_CASE("cli: ctl exit codes, the floor, and a clean shutdown without the error prefix", "[kvm][cli]") {
  HVMM_REQUIRE_KVM();
  TempFile dir("unused", "");
  const std::string sock = dir.dir() + "/api.sock";
  CHECK(ctl(sock, {"status"}).status == 3);        // cannot connect
  CHECK(ctl(sock, {"frobnicate"}).status == 2);    // usage
  ProcessResult floor, ok, status;
  auto r = run_hvmm({"run", "--mem", "1G", "--quiet", "--api-sock", sock, "--workload", "barrier"}, 30'000ms,
                    [&](ChildProcess& c) {
                      if (!c.wait_for_stdout("barrier: waiting", 20'000ms)) return;
                      floor = ctl(sock, {"resize", "100M"});
                      ok = ctl(sock, {"resize", "256M"});
                      status = ctl(sock, {"status"});
                      ctl(sock, {"shutdown"});
                    });
  INFO(r.describe());
  CHECK(floor.status == 1);  // refused by the VM
  CHECK_THAT(floor.err, Catch::Contains("below_floor"));
  CHECK(ok.status == 0);
  CHECK(count_lines(status.out) == 1);
  CHECK(r.status == 0);
  CHECK(r.err.find("hvmm:") == std::string::npos);
  CHECK_THAT(r.err, Catch::Contains("shut down through the control API"));
}
