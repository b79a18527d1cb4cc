#include "reclaim/footprint.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace hvmm {

uint64_t read_process_rss_bytes() {
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long size_pages = 0, resident_pages = 0;  // statm: size resident shared text lib data dt
  if (std::sscanf(buf, "%llu %llu", &size_pages, &resident_pages) != 2) return 0;
  const long page = ::sysconf(_SC_PAGESIZE);
  return page > 0 ? resident_pages * static_cast<uint64_t>(page) : 0;
}

uint64_t parse_vmhwm_bytes(const char* status_text) {
  const char* line = std::strstr(status_text, "\nVmHWM:");
  if (!line) return 0;
  unsigned long long kib = 0;
  if (std::sscanf(line + 7, " %llu kB", &kib) != 1) return 0;
  return kib * 1024;
}

uint64_t read_process_peak_rss_bytes() {
  const int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[4096];
    buf[0] = '\n';  // so that the first line matches "\nVmHWM:" as well
    const ssize_t n = ::read(fd, buf + 1, sizeof(buf) - 2);
    ::close(fd);
    if (n > 0) {
      buf[n + 1] = '\0';
      if (uint64_t hwm = parse_vmhwm_bytes(buf)) return hwm;
    }
  }
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss > 0) return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
  return 0;
}

void FootprintMeter::note_peak(uint64_t rss_bytes) {
  std::lock_guard lock(mu_);
  peak_ = std::max(peak_, rss_bytes);
}

void FootprintMeter::sample(uint64_t rss_bytes, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  if (last_time_ && now > *last_time_) {
    const long double seconds = std::chrono::duration<long double>(now - *last_time_).count();
    byte_seconds_ += (static_cast<long double>(last_) + static_cast<long double>(rss_bytes)) / 2 * seconds;
  }
  if (!first_time_) first_time_ = now;
  if (!last_time_ || now > *last_time_) last_time_ = now;
  last_ = rss_bytes;
  peak_ = std::max(peak_, rss_bytes);
  ++count_;
}

double FootprintMeter::gib_minutes() const {
  std::lock_guard lock(mu_);
  return static_cast<double>(byte_seconds_ / (1024.0L * 1024 * 1024) / 60);
}

uint64_t FootprintMeter::peak_bytes() const {
  std::lock_guard lock(mu_);
  return peak_;
}

uint64_t FootprintMeter::last_bytes() const {
  std::lock_guard lock(mu_);
  return last_;
}

uint64_t FootprintMeter::sample_count() const {
  std::lock_guard lock(mu_);
  return count_;
}

std::chrono::steady_clock::duration FootprintMeter::covered() const {
  std::lock_guard lock(mu_);
  if (!first_time_ || !last_time_) return {};
  return *last_time_ - *first_time_;
}

}  // namespace hvmm
