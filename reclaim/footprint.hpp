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

// Integral of RSS over time by the trapezoid rule over the samples given. Thread-safe.
// The integral covers [first sample, last sample]; take one sample at start and one at the end.
class FootprintMeter {
 public:
  // Adds a sample. A time point earlier than the previous sample (a caller bug) contributes no area
  // but still updates last/peak.
  void sample(uint64_t rss_bytes, std::chrono::steady_clock::time_point now);

  double gib_minutes() const;  // ∫ RSS dt, in GiB·min
  uint64_t peak_bytes() const;
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
