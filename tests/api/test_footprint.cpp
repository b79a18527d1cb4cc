#include <catch2/catch.hpp>
#include <sys/mman.h>

#include <cstring>
#include <thread>

#include "reclaim/footprint.hpp"

using hvmm::FootprintMeter;
using std::chrono::minutes;
using std::chrono::seconds;

namespace {
constexpr uint64_t GiB = 1ull << 30;
const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1000);
}  // namespace

TEST_CASE("footprint: empty and single-sample meters have no area") {
  FootprintMeter m;
  CHECK(m.gib_minutes() == 0);
  CHECK(m.peak_bytes() == 0);
  CHECK(m.last_bytes() == 0);
  m.sample(4 * GiB, t0);
  CHECK(m.gib_minutes() == 0);
  CHECK(m.peak_bytes() == 4 * GiB);
  CHECK(m.last_bytes() == 4 * GiB);
  CHECK(m.sample_count() == 1);
  CHECK(m.covered() == std::chrono::steady_clock::duration::zero());
}

TEST_CASE("footprint: trapezoid integral over synthetic time points") {
  FootprintMeter m;
  SECTION("constant 1 GiB for one minute is 1 GiB·min") {
    m.sample(GiB, t0);
    m.sample(GiB, t0 + minutes(1));
    CHECK(m.gib_minutes() == Approx(1.0));
  }
  SECTION("a ramp 0 -> 2 GiB over one minute is 1 GiB·min") {
    m.sample(0, t0);
    m.sample(2 * GiB, t0 + minutes(1));
    CHECK(m.gib_minutes() == Approx(1.0));
    CHECK(m.peak_bytes() == 2 * GiB);
  }
  SECTION("several uneven segments add up") {
    m.sample(2 * GiB, t0);
    m.sample(4 * GiB, t0 + seconds(30));   // (2+4)/2 * 0.5 min = 1.5
    m.sample(4 * GiB, t0 + seconds(150));  // 4 * 2 min = 8
    m.sample(1 * GiB, t0 + seconds(156));  // 2.5 * 0.1 min = 0.25
    CHECK(m.gib_minutes() == Approx(9.75));
    CHECK(m.peak_bytes() == 4 * GiB);
    CHECK(m.last_bytes() == 1 * GiB);
    CHECK(m.sample_count() == 4);
    CHECK(m.covered() == seconds(156));
  }
  SECTION("sub-millisecond intervals are not lost") {
    m.sample(GiB, t0);
    for (int i = 1; i <= 60000; ++i) m.sample(GiB, t0 + std::chrono::milliseconds(i));
    CHECK(m.gib_minutes() == Approx(1.0).epsilon(1e-9));
  }
  SECTION("a time point going backwards adds no area but updates last/peak") {
    m.sample(GiB, t0 + minutes(1));
    m.sample(8 * GiB, t0);  // earlier: ignored for the integral
    CHECK(m.gib_minutes() == 0);
    CHECK(m.last_bytes() == 8 * GiB);
    CHECK(m.peak_bytes() == 8 * GiB);
    m.sample(8 * GiB, t0 + minutes(2));  // from the latest time point, at the latest value
    CHECK(m.gib_minutes() == Approx(8.0));
  }
  SECTION("a 24 GiB VM for a day stays exact") {
    m.sample(24 * GiB, t0);
    m.sample(24 * GiB, t0 + std::chrono::hours(24));
    CHECK(m.gib_minutes() == Approx(24.0 * 24 * 60));
  }
}

TEST_CASE("footprint: concurrent samplers are safe") {
  FootprintMeter m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) m.sample(static_cast<uint64_t>(t * 1000 + i), t0 + seconds(i));
    });
  for (auto& th : threads) th.join();
  CHECK(m.sample_count() == 4000);
  CHECK(m.peak_bytes() == 3999);
  CHECK(m.gib_minutes() >= 0);
}

TEST_CASE("footprint: read_process_rss_bytes sees memory being touched") {
  const uint64_t before = hvmm::read_process_rss_bytes();
  REQUIRE(before > 0);
  constexpr size_t kBytes = 64ull << 20;
  void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  std::memset(p, 1, kBytes);
  const uint64_t touched = hvmm::read_process_rss_bytes();
  ::munmap(p, kBytes);
  CHECK(touched >= before + kBytes / 2);
  CHECK(hvmm::read_process_rss_bytes() < touched);
}
