// A child process for integration tests: spawned in its own process group with stdout/stderr
// captured, killed (whole group, SIGKILL) at a hard deadline, and always reaped — also when a failing
// REQUIRE unwinds the test while the child (a VM) is still running.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace hvmm::testing {

struct ProcessResult {
  bool exited = false;       // ended by exit(); false if killed by a signal
  int status = -1;           // exit status when `exited`
  int signal = 0;            // terminating signal otherwise
  bool core_dumped = false;
  bool timed_out = false;    // the harness killed it at the deadline
  std::string out, err;
  std::chrono::duration<double> elapsed{};  // spawn to reap
  uint64_t peak_rss_kib = 0;                 // highest VmRSS sampled while it ran
  // One line for failure messages: how it ended, then both streams.
  std::string describe() const;
};

struct ChildOptions {
  std::chrono::milliseconds timeout{30'000};    // hard deadline from spawn
  std::chrono::milliseconds rss_period{20};     // VmRSS sampling period
};

class ChildProcess {
 public:
  // Throws std::runtime_error (with the program and errno text) if the program cannot be started.
  ChildProcess(std::vector<std::string> argv, ChildOptions opts = {});
  ~ChildProcess();  // SIGKILLs the group if it still runs, waits for it, joins the monitor
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const;
  // VmRSS of the child right now, from /proc/PID/status; nullopt once it has ended.
  std::optional<uint64_t> rss_kib() const;
  std::string out_so_far() const;
  std::string err_so_far() const;
  // Waits until stdout contains `needle`, the child ends, or `limit` passes.
  bool wait_for_stdout(const std::string& needle, std::chrono::milliseconds limit);
  // Waits until the child ends (at the latest at its deadline) and returns how it ended.
  ProcessResult wait();
  // SIGKILL to the whole process group now (no-op once it has ended).
  void kill();

 private:
  void monitor();  // runs in monitor_: pumps output, samples RSS, enforces the deadline, reaps

  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1, wake_fd_ = -1;  // wake_fd_: eventfd to stop the monitor's poll
  ChildOptions opts_;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;        // reaped
  bool kill_requested_ = false;
  ProcessResult result_;
  std::thread monitor_;
};

// Spawns argv, runs `while_running` (if any) while it runs, then waits for it.
ProcessResult run_process(std::vector<std::string> argv, ChildOptions opts = {},
                          const std::function<void(ChildProcess&)>& while_running = {});

// VmRSS in KiB from a /proc/PID/status text; nullopt if absent (kernel threads, zombies).
std::optional<uint64_t> parse_vmrss_kib(const std::string& status_text);

}  // namespace hvmm::testing
