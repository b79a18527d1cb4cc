// Memory footprint accounting: the RSS of this process (the VMM, guest RAM included) and its integral
// over time in GiB·min, the benchmark metric of the reference (HyperAlloc, EuroSys'25).
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

namespace hvmm {

// Resident set size of this process from /proc/self/statm (cheap: no page walk); 0 on failure.
uint64_t read_process_rss_bytes();
// The highest RSS this process ever had, as the kernel keeps it (VmHWM of /proc/self/status, else
// getrusage's ru_maxrss): exact, where sampling read_process_rss_bytes() misses short peaks. 0 on
// failure.
uint64_t read_process_peak_rss_bytes();
// VmHWM in bytes from a /proc/PID/status text; 0 if absent or malformed.
uint64_t parse_vmhwm_bytes(const char* status_text);

// Integral of RSS over time by the trapezoid rule over the samples given. Thread-safe.
// The integral covers [first sample, last sample]; take one sample at start and one at the end.
class FootprintMeter {
 public:
  // Adds a sample. A time point earlier than the previous sample (a caller bug) contributes no area
  // but still updates last/peak.
  void sample(uint64_t rss_bytes, std::chrono::steady_clock::time_point now);

  // A peak known from elsewhere (read_process_peak_rss_bytes()): raises peak_bytes(), adds no area.
  void note_peak(uint64_t rss_bytes);

  double gib_minutes() const;  // ∫ RSS dt, in GiB·min
  uint64_t peak_bytes() const;  // the highest sample or noted peak
  uint64_t last_bytes() const;  // 0 before the first sample
  uint64_t sample_count() const;
  // Time from the first sample to the last one (zero before two samples).
  std::chrono::steady_clock::duration covered() const;

 private:
  mutable std::mutex mu_;
  long double byte_seconds_ = 0;
  uint64_t peak_ = 0;
  uint64_t last_ = 0;
  uint64_t count_ = 0;
  std::optional<std::chrono::steady_clock::time_point> first_time_, last_time_;
};

}  // namespace hvmm
