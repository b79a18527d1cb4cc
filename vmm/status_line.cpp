#include "vmm/status_line.hpp"

#include <fmt/format.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <vector>
#include <exception>

#include "vmm/api/size_parse.hpp"
#include "base/fd.hpp"

namespace hvmm {
namespace {

// Terminal width of fd, or 0 when unknown.
size_t terminal_columns(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0) return ws.ws_col;
  return 0;
}

// Cuts `s` to at most `columns` characters (UTF-8 code points), so the line never wraps: a wrapped
// line cannot be redrawn in place with '\r'.
void truncate_to(std::string& s, size_t columns) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (++chars > columns) {
      s.resize(i);
      return;
    }
  }
}

// VmHWM of this process: the most memory it ever had resident, i.e. what it would hold now if
// nothing had been given back (0 when unknown).
uint64_t read_hwm_bytes() {
  FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof(line), f))
    if (std::sscanf(line, "VmHWM: %" SCNu64 " kB", &kib) == 1) break;
  std::fclose(f);
  return kib * 1024;
}

size_t display_width(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace

std::string compose_status_line(const std::string& elapsed, const std::string& fields, const std::string& footprint,
                                size_t columns) {
  std::vector<std::string> parts;
  for (size_t start = 0; !fields.empty();) {
    const size_t sep = fields.find(" | ", start);
    parts.push_back(fields.substr(start, sep == std::string::npos ? std::string::npos : sep - start));
    if (sep == std::string::npos) break;
    start = sep + 3;
  }
  // The footprint ranks after the first three fields (host RSS, guest free, reclaimed...).
  parts.insert(parts.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(3, parts.size())), footprint);
  std::string line = "[" + elapsed + "]";
  for (const auto& p : parts) {
    const std::string add = (line.back() == ']' ? " " : " | ") + p;
    if (columns != 0 && display_width(line) + display_width(add) > columns) break;  // the rest ranks lower
    line += add;
  }
  if (columns > 0) truncate_to(line, columns);  // a first field wider than the terminal
  return line;
}

bool status_line_enabled(bool quiet) { return !quiet && ::isatty(STDOUT_FILENO) && ::isatty(STDERR_FILENO); }

std::string format_duration(std::chrono::steady_clock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  if (s < 60) return fmt::format("{:.1f}s", s);
  const auto total = static_cast<long long>(s);
  if (s < 3600) return fmt::format("{}m {:04.1f}s", total / 60, s - static_cast<double>(total / 60 * 60));
  return fmt::format("{}h {:02}m {:02}s", total / 3600, total / 60 % 60, total % 60);
}

StatusLine::StatusLine(FootprintMeter& meter, std::function<std::string()> fields, bool show,
                       std::chrono::milliseconds period, int out_fd)
    : meter_(meter),
      fields_(std::move(fields)),
      show_(show),
      period_(period.count() > 0 ? period : std::chrono::milliseconds(1)),
      out_fd_(out_fd),
      start_(std::chrono::steady_clock::now()) {
  meter_.sample(read_process_rss_bytes(), start_);  // the integral starts now
  sample_hwm(start_);
  thread_ = std::thread([this] { run(); });
}

StatusLine::~StatusLine() { stop(); }

void StatusLine::run() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period_, [this] { return stop_requested_; })) {
    lock.unlock();
    sample_now();
    if (show_) draw();
    lock.lock();
  }
}

void StatusLine::sample_now() {
  const auto now = std::chrono::steady_clock::now();
  meter_.sample(read_process_rss_bytes(), now);
  sample_hwm(now);
}

void StatusLine::sample_hwm(std::chrono::steady_clock::time_point now) {
  const uint64_t hwm = read_hwm_bytes();
  std::lock_guard lock(mu_);
  if (hwm_last_time_) {
    const double dt = std::chrono::duration<double>(now - *hwm_last_time_).count();
    if (dt > 0) hwm_byte_seconds_ += dt * (static_cast<double>(hwm_last_) + static_cast<double>(hwm)) / 2;
  }
  hwm_last_ = hwm;
  hwm_last_time_ = now;
}

void StatusLine::draw() {
  std::string fields;
  try {
    fields = fields_ ? fields_() : std::string();
  } catch (const std::exception& e) {
    fields = fmt::format("(status unavailable: {})", e.what());
  } catch (...) {
    fields = "(status unavailable)";
  }
  const size_t cols = terminal_columns(out_fd_);
  const std::string line = compose_status_line(format_duration(std::chrono::steady_clock::now() - start_), fields,
                                               fmt::format("footprint {:.2f} GiB·min", meter_.gib_minutes()),
                                               cols > 1 ? cols - 1 : 0);
  std::lock_guard lock(out_mu_);
  last_line_ = "\r" + line + "\x1b[K";
  write_out(last_line_);
}

void StatusLine::print_above(std::string_view text, int fd) {
  if (!show_) {
    write_fully(fd, text);
    return;
  }
  // Clear the status line, print, and draw it again below what was printed.
  std::lock_guard lock(out_mu_);
  write_out("\r\x1b[K");
  write_fully(fd, text);
  if (!text.empty() && text.back() == '\n') write_out(last_line_);
}

// One write per update, so concurrent writers cannot split the line.
void StatusLine::write_out(const std::string& s) const { write_fully(out_fd_, s); }

void StatusLine::stop() {
  // call_once: a concurrent second caller waits for the first instead of joining the thread twice.
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard lock(mu_);
      stop_requested_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    const auto end = std::chrono::steady_clock::now();
    meter_.sample(read_process_rss_bytes(), end);
    sample_hwm(end);
    // Samples a second apart miss short peaks (issue 13, defect 5); the kernel's high-water mark
    // does not.
    meter_.note_peak(read_process_peak_rss_bytes());
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      end_ = end;
    }
    if (show_) {
      std::lock_guard lock(out_mu_);
      last_line_.clear();
      write_out("\r\x1b[K" + summary() + "\n");
    }
  });
}

double StatusLine::without_reclaim_gib_minutes() const {
  std::lock_guard lock(mu_);
  return hwm_byte_seconds_ / double(1ull << 30) / 60;
}

std::string StatusLine::summary() const {
  std::chrono::steady_clock::time_point end;
  {
    std::lock_guard lock(mu_);
    end = stopped_ ? end_ : std::chrono::steady_clock::now();
  }
  const double actual = meter_.gib_minutes();
  const double without = without_reclaim_gib_minutes();
  std::string s = fmt::format("ran {}, peak RSS {}, footprint {:.2f} GiB·min", format_duration(end - start_),
                              format_size(meter_.peak_bytes()), actual);
  if (without > 0 && without >= actual)
    s += fmt::format(" (without reclamation {:.2f} GiB·min: {:.0f}% saved)", without, 100 * (1 - actual / without));
  return s;
}

}  // namespace hvmm
