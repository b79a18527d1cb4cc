// The live one-line status view of `hvmm run`, and the sampler that feeds the footprint meter.
#pragma once
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>

#include "reclaim/footprint.hpp"

namespace hvmm {

// True when the status line should be drawn: not quiet, and both stdout and stderr are terminals
// (the line is drawn on stderr; redrawing in place into a file or pipe would only make a mess).
bool status_line_enabled(bool quiet);

// A sampler thread: every `period` it samples this process's RSS into `meter` and, when `show`,
// redraws one line in place on `out_fd` ("\r...\x1b[K"): elapsed time, the text from `fields` (the
// VM runner's: guest used, host RSS, reclaimed, installs...) and the footprint so far. Sampling goes on
// when the line is not shown. `fields` is called from the sampler thread, never after stop().
class StatusLine {
 public:
  StatusLine(FootprintMeter& meter, std::function<std::string()> fields, bool show,
             std::chrono::milliseconds period = std::chrono::seconds(1), int out_fd = STDERR_FILENO);
  ~StatusLine();  // stop()
  StatusLine(const StatusLine&) = delete;
  StatusLine& operator=(const StatusLine&) = delete;

  // Stops the thread, takes a last sample, and (when shown) clears the line and prints summary().
  // Idempotent.
  void stop();
  // "ran 1m 23.4s, peak RSS 2.1 GiB, footprint 0.84 GiB·min (without reclamation 2.10 GiB·min:
  // 60% saved)" (up to now if not stopped yet).
  std::string summary() const;
  // What the footprint would have been without reclamation: the integral of this process's
  // high-water RSS (VmHWM), the memory it would still hold had nothing been given back.
  double without_reclaim_gib_minutes() const;
  // Writes `text` to `fd` (e.g. the guest's console on stdout) without tearing the status line:
  // the line is cleared first and redrawn after a complete line. Thread-safe.
  void print_above(std::string_view text, int fd);

 private:
  void run();
  void sample_now();
  void sample_hwm(std::chrono::steady_clock::time_point now);
  void draw();
  void write_out(const std::string& s) const;

  FootprintMeter& meter_;
  std::function<std::string()> fields_;
  const bool show_;
  const std::chrono::milliseconds period_;
  const int out_fd_;
  const std::chrono::steady_clock::time_point start_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_requested_ = false;              // guarded by mu_
  bool stopped_ = false;                     // guarded by mu_
  std::chrono::steady_clock::time_point end_;  // guarded by mu_, valid when stopped_
  double hwm_byte_seconds_ = 0;                 // guarded by mu_: the integral of VmHWM
  uint64_t hwm_last_ = 0;                       // guarded by mu_
  std::optional<std::chrono::steady_clock::time_point> hwm_last_time_;  // guarded by mu_
  std::once_flag stop_once_;
  std::mutex out_mu_;      // serialises terminal output: draws and print_above
  std::string last_line_;  // guarded by out_mu_: what to redraw after print_above
  std::thread thread_;
};

// One status line for a terminal `columns` wide (0: no limit): "[elapsed] " and the fields of
// `fields` (separated by " | ", most important first) with `footprint` ranked fourth; from the first
// field that does not fit on, the fields are left out whole rather than cut.
std::string compose_status_line(const std::string& elapsed, const std::string& fields, const std::string& footprint,
                                size_t columns);

// "45.2s", "3m 07.0s", "1h 02m 03s"
std::string format_duration(std::chrono::steady_clock::duration d);

}  // namespace hvmm
