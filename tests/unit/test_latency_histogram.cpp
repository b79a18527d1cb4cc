// abi/latency_histogram.hpp: bucket bounds, percentiles within one bucket of the truth, an exact
// maximum, and no lost counts when several threads record at once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "abi/latency_histogram.hpp"

using hvmm::abi::LatencyHistogram;

TEST_CASE("latency histogram: every value falls into a bucket whose bounds hold it", "[histogram]") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; i++) {
    const uint64_t v = rng() >> (rng() % 64);
    const unsigned b = LatencyHistogram::bucket_of(v);
    REQUIRE(b < LatencyHistogram::kBuckets);
    CHECK(v <= LatencyHistogram::bucket_upper(b));
    if (b > 0) CHECK(v > LatencyHistogram::bucket_upper(b - 1));
    // A bucket is at most 1/kSub of its lower bound wide: the reported bound is at most 12.5 % high.
    CHECK(double(LatencyHistogram::bucket_upper(b) - v) <= double(v) / LatencyHistogram::kSub);
  }
}

TEST_CASE("latency histogram: an empty histogram reports zeros", "[histogram]") {
  LatencyHistogram h;
  const auto s = h.summary();
  CHECK(s.count == 0);
  CHECK(s.p50 == 0);
  CHECK(s.p99 == 0);
  CHECK(s.max == 0);
}

TEST_CASE("latency histogram: percentiles are the true ones within a bucket, the maximum exact", "[histogram]") {
  LatencyHistogram h;
  std::vector<uint64_t> v;
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> d(12.0, 1.0);  // ~160 us median in ns, a long tail
  for (int i = 0; i < 20000; i++) v.push_back(uint64_t(d(rng)) + 1);
  for (uint64_t x : v) h.record(x);
  std::sort(v.begin(), v.end());
  const auto s = h.summary();
  CHECK(s.count == v.size());
  CHECK(s.max == v.back());
  auto truth = [&](double q) { return v[size_t(q * double(v.size()) + 0.999999) - 1]; };
  CHECK(s.p50 >= truth(0.50));
  CHECK(double(s.p50) <= double(truth(0.50)) * 1.125 + 1);
  CHECK(s.p99 >= truth(0.99));
  CHECK(double(s.p99) <= double(truth(0.99)) * 1.125 + 1);
}

TEST_CASE("latency histogram: a single slow value is the maximum and drives p99 only with enough weight",
          "[histogram]") {
  LatencyHistogram h;
  for (int i = 0; i < 999; i++) h.record(100);
  h.record(50'000'000);
  auto s = h.summary();
  const uint64_t bound = LatencyHistogram::bucket_upper(LatencyHistogram::bucket_of(100));  // 103
  CHECK(s.p50 == bound);
  CHECK(s.p99 == bound);  // 1 in 1000 is above the 99th percentile
  CHECK(s.max == 50'000'000);
  for (int i = 0; i < 20; i++) h.record(1'000'000);
  s = h.summary();
  CHECK(s.p99 >= 1'000'000);
  CHECK(s.p99 <= 1'125'000);
}

TEST_CASE("latency histogram: concurrent records lose nothing", "[histogram]") {
  LatencyHistogram h;
  constexpr int kThreads = 4, kEach = 50000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++)
    ts.emplace_back([&h, t] {
      for (int i = 0; i < kEach; i++) h.record(uint64_t(t * kEach + i));
    });
  for (auto& t : ts) t.join();
  const auto s = h.summary();
  CHECK(s.count == uint64_t(kThreads) * kEach);
  CHECK(s.max == uint64_t(kThreads) * kEach - 1);
}
