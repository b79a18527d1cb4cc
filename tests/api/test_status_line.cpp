#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "vmm/status_line.hpp"

using hvmm::FootprintMeter;
using hvmm::StatusLine;
using namespace std::chrono_literals;

namespace {

struct Pipe {
  int rd = -1, wr = -1;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
    rd = fds[0];
    wr = fds[1];
  }
  ~Pipe() {
    ::close(rd);
    ::close(wr);
  }
  std::string drain() const {
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(rd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
    return s;
  }
};

// Counts callback invocations and lets the test wait for a number of them.
struct Calls {
  std::mutex mu;
  std::condition_variable cv;
  int n = 0;
  std::string operator()() {
    std::lock_guard lock(mu);
    ++n;
    cv.notify_all();
    return "guest 1.0 GiB | installs 7";
  }
  void wait_for(int want) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return n >= want; });
  }
};

}  // namespace

TEST_CASE("status line: redraws one line in place and prints a summary at stop") {
  Pipe pipe;
  FootprintMeter meter;
  Calls calls;
  StatusLine line(meter, [&] { return calls(); }, /*show=*/true, 5ms, pipe.wr);
  calls.wait_for(3);
  line.stop();
  const int calls_at_stop = calls.n;
  line.stop();  // idempotent
  const std::string out = pipe.drain();
  CHECK(out.find("\rguest") == std::string::npos);  // prefixed with the elapsed time
  CHECK(out.find("] guest 1.0 GiB | installs 7 | footprint ") != std::string::npos);
  CHECK(out.find("\x1b[K") != std::string::npos);
  CHECK(out.find('\n') == out.size() - 1);  // only the summary ends a line
  const std::string last = out.substr(out.rfind('\r') + 1);
  CHECK(last.find("\x1b[Kran ") == 0);
  CHECK(last.find("peak RSS") != std::string::npos);
  CHECK(last.find("GiB·min") != std::string::npos);
  CHECK(last.back() == '\n');
  // This process never gave memory back: the footprint without reclamation is at least the footprint.
  CHECK(line.without_reclaim_gib_minutes() > 0);
  CHECK(line.without_reclaim_gib_minutes() >= meter.gib_minutes() * 0.99);
  CHECK(meter.sample_count() >= 4);  // start, >= 3 ticks, stop
  CHECK(meter.peak_bytes() > 0);
  std::this_thread::sleep_for(20ms);
  CHECK(calls.n == calls_at_stop);  // no callback after stop
}

TEST_CASE("status line: hidden, it still samples and writes nothing") {
  Pipe pipe;
  FootprintMeter meter;
  std::atomic<int> calls{0};
  {
    StatusLine line(meter, [&] { ++calls; return std::string("x"); }, /*show=*/false, 2ms, pipe.wr);
    while (meter.sample_count() < 5) std::this_thread::sleep_for(1ms);
    CHECK(line.summary().find("peak RSS") != std::string::npos);
  }  // destructor stops
  CHECK(calls == 0);
  CHECK(pipe.drain().empty());
  CHECK(meter.last_bytes() > 0);
}

TEST_CASE("status line: a throwing callback shows a placeholder") {
  Pipe pipe;
  FootprintMeter meter;
  std::atomic<int> calls{0};
  StatusLine line(meter, [&]() -> std::string { ++calls; throw std::runtime_error("vm gone"); }, true, 2ms,
                  pipe.wr);
  while (calls < 2) std::this_thread::sleep_for(1ms);
  line.stop();
  CHECK(pipe.drain().find("(status unavailable: vm gone)") != std::string::npos);
}

TEST_CASE("format_duration") {
  CHECK(hvmm::format_duration(0s) == "0.0s");
  CHECK(hvmm::format_duration(1500ms) == "1.5s");
  CHECK(hvmm::format_duration(187s) == "3m 07.0s");
  CHECK(hvmm::format_duration(3723s) == "1h 02m 03s");
}

TEST_CASE("status line: fields that do not fit are left out whole, most important kept") {
  const std::string fields = "host RSS 2.0 GiB | guest free 1.0 GiB | reclaimed 3.0 GiB | installs 512 | RAM 8.0 GiB";
  const std::string wide = hvmm::compose_status_line("1.0s", fields, "footprint 0.10 GiB·min", 0);
  CHECK(wide ==
        "[1.0s] host RSS 2.0 GiB | guest free 1.0 GiB | reclaimed 3.0 GiB | footprint 0.10 GiB·min | installs 512 | RAM 8.0 GiB");
  const std::string mid = hvmm::compose_status_line("1.0s", fields, "footprint 0.10 GiB·min", 80);
  CHECK(mid == "[1.0s] host RSS 2.0 GiB | guest free 1.0 GiB | reclaimed 3.0 GiB");  // 89 columns wanted
  const std::string narrow = hvmm::compose_status_line("1.0s", fields, "footprint 0.10 GiB·min", 40);
  CHECK(narrow == "[1.0s] host RSS 2.0 GiB");
  const std::string tiny = hvmm::compose_status_line("1.0s", fields, "footprint 0.10 GiB·min", 10);
  CHECK(tiny == "[1.0s]");
}

// Issue 13, defect 5: the summary's peak RSS was the highest of samples a second apart, so a peak
// between two samples was lost. Now it is the kernel's high-water mark.
TEST_CASE("status line: the summary's peak RSS includes a peak between two samples") {
  Pipe pipe;
  FootprintMeter meter;
  constexpr size_t kBytes = 256u << 20;
  uint64_t before = 0;
  {
    StatusLine line(meter, [] { return std::string(); }, /*show=*/false, std::chrono::hours(1), pipe.wr);
    before = hvmm::read_process_rss_bytes();
    REQUIRE(before > 0);
    // Touch 256 MiB and give it back before the sampler (once an hour) could see it.
    void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    std::memset(p, 0x5a, kBytes);
    ::munmap(p, kBytes);
    line.stop();
  }
  CHECK(meter.sample_count() == 2);  // start and stop only: the peak was never sampled
  CHECK(meter.last_bytes() < before + kBytes / 2);
  CHECK(meter.peak_bytes() >= before + kBytes - (16u << 20));  // the touched memory, give or take a little
}

TEST_CASE("footprint: VmHWM parsing") {
  CHECK(hvmm::parse_vmhwm_bytes("\nName:\thvmm\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 10 kB\n") == 2048u * 1024);
  CHECK(hvmm::parse_vmhwm_bytes("\nVmRSS:\t 10 kB\n") == 0);
  CHECK(hvmm::parse_vmhwm_bytes("\nVmHWM:\tgarbage\n") == 0);
  CHECK(hvmm::read_process_peak_rss_bytes() >= hvmm::read_process_rss_bytes());
}
