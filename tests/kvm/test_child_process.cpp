// The harness itself (no KVM): capture, exit statuses, the hard timeout killing the whole process
// group, reaping on scope exit, RSS sampling and the while-running callback.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "child_process.hpp"

using namespace hvmm::testing;
using namespace std::chrono_literals;

namespace {

ProcessResult sh(const std::string& script, std::chrono::milliseconds timeout = 10'000ms) {
  return run_process({"/bin/sh", "-c", script}, ChildOptions{.timeout = timeout});
}

// Gone = no such process, or a zombie waiting for some other reaper (it runs nothing any more).
bool process_gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return true;
  auto close_paren = text.rfind(')');
  return close_paren != std::string::npos && text.size() > close_paren + 2 && text[close_paren + 2] == 'Z';
}

bool eventually_gone(pid_t pid) {
  for (int i = 0; i < 200; ++i, std::this_thread::sleep_for(10ms))
    if (process_gone(pid)) return true;
  return false;
}

}  // namespace

TEST_CASE("child process: captures stdout, stderr and the exit status", "[harness]") {
  auto r = sh("echo out; echo err >&2; exit 7");
  INFO(r.describe());
  CHECK(r.exited);
  CHECK(r.status == 7);
  CHECK_FALSE(r.timed_out);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
}

TEST_CASE("child process: large output does not block the child", "[harness]") {
  auto r = sh("head -c 1000000 /dev/zero; head -c 300000 /dev/zero >&2");
  INFO(r.status);
  CHECK(r.exited);
  CHECK(r.status == 0);
  CHECK(r.out.size() == 1'000'000);
  CHECK(r.err.size() == 300'000);
}

TEST_CASE("child process: death by signal is reported as such", "[harness]") {
  auto r = sh("kill -TERM $$");
  CHECK_FALSE(r.exited);
  CHECK(r.signal == SIGTERM);
  CHECK_FALSE(r.timed_out);
}

TEST_CASE("child process: the timeout kills the whole process group", "[harness]") {
  // The background sleep is a grandchild: it must die with its parent.
  auto r = sh("sleep 30 & echo $!; wait", 300ms);
  INFO(r.describe());
  CHECK(r.timed_out);
  CHECK_FALSE(r.exited);
  CHECK(r.signal == SIGKILL);
  CHECK(r.elapsed < 5s);
  pid_t grandchild = std::stoi(r.out);
  CHECK(eventually_gone(grandchild));
}

TEST_CASE("child process: leaving scope kills and reaps a running child", "[harness]") {
  pid_t pid;
  {
    ChildProcess c({"/bin/sleep", "30"}, ChildOptions{.timeout = 60'000ms});
    pid = c.pid();
    CHECK(c.running());
  }
  // Reaped by us: no longer our child, and not running.
  CHECK(::kill(pid, 0) != 0);
}

TEST_CASE("child process: a program that cannot be executed throws with its name", "[harness]") {
  CHECK_THROWS_WITH(ChildProcess({"/nonexistent/prog"}), Catch::Contains("/nonexistent/prog"));
}

TEST_CASE("child process: RSS is sampled while it runs, the callback runs meanwhile", "[harness]") {
  std::optional<uint64_t> live_rss;
  bool saw_ready = false;
  auto r = run_process({"/bin/sh", "-c", "echo ready; sleep 0.3"}, ChildOptions{.timeout = 10'000ms},
                       [&](ChildProcess& c) {
                         saw_ready = c.wait_for_stdout("ready", 5'000ms);
                         live_rss = c.rss_kib();
                       });
  INFO(r.describe());
  CHECK(r.status == 0);
  CHECK(saw_ready);
  REQUIRE(live_rss.has_value());
  CHECK(*live_rss > 0);
  CHECK(r.peak_rss_kib > 0);
}

TEST_CASE("child process: VmRSS parsing", "[harness]") {
  CHECK(parse_vmrss_kib("Name:\tx\nVmPeak:\t 100 kB\nVmRSS:\t   10092 kB\nThreads: 3\n") == 10092u);
  CHECK_FALSE(parse_vmrss_kib("Name:\tx\nState:\tZ (zombie)\n").has_value());
  CHECK_FALSE(parse_vmrss_kib("VmRSS:\tgarbage\n").has_value());
}
