// A fixed-bucket, log-scale latency histogram with lock-free counters: record() from any number of
// threads (one relaxed fetch_add, one CAS loop only when a new maximum is seen), summary() at any
// time. Used for HyperAlloc install latency on both sides (ARCHITECTURE.md, "One frame's life"):
// the host times each install it handles (reclaim/zone_state.cpp), the built-in guest times each
// install exit as it sees it (guest/mem.cpp). It lives in abi/ because both sides use the same
// buckets, so their percentiles are comparable; it is header-only and freestanding.
//
// Buckets: values 0..kSub-1 exactly, then every power of two [2^e, 2^(e+1)) split into kSub equal
// sub-buckets. A percentile is reported as the upper bound of its bucket (never an underestimate),
// at most 1/kSub = 12.5 % above the true value; the maximum is exact.
#pragma once
#include <atomic>
#include <cstdint>

namespace hvmm::abi {

class LatencyHistogram {
 public:
  static constexpr unsigned kSubBits = 3;
  static constexpr uint64_t kSub = 1u << kSubBits;  // sub-buckets per power of two
  static constexpr unsigned kBuckets = (64 - kSubBits + 1) * kSub;

  struct Summary {
    uint64_t count = 0;
    uint64_t p50 = 0, p99 = 0, max = 0;  // in the unit record() was given; 0 when count == 0
  };

  void record(uint64_t v) {
    buckets_[bucket_of(v)].fetch_add(1, std::memory_order_relaxed);
    uint64_t m = max_.load(std::memory_order_relaxed);
    while (v > m && !max_.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
    }
  }

  uint64_t count() const {
    uint64_t n = 0;
    for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
    return n;
  }

  // The smallest bucket bound below which at least q (0..1) of the recorded values lie, capped at
  // the exact maximum. Concurrent record() calls may or may not be included.
  uint64_t quantile(double q) const {
    uint64_t counts[kBuckets];
    uint64_t n = 0;
    for (unsigned i = 0; i < kBuckets; i++) n += counts[i] = buckets_[i].load(std::memory_order_relaxed);
    return quantile_of(counts, n, q);
  }

  Summary summary() const {
    uint64_t counts[kBuckets];
    uint64_t n = 0;
    for (unsigned i = 0; i < kBuckets; i++) n += counts[i] = buckets_[i].load(std::memory_order_relaxed);
    Summary s;
    s.count = n;
    if (!n) return s;
    s.max = max_.load(std::memory_order_relaxed);
    s.p50 = min(quantile_of(counts, n, 0.50), s.max);
    s.p99 = min(quantile_of(counts, n, 0.99), s.max);
    return s;
  }

  static constexpr unsigned bucket_of(uint64_t v) {
    if (v < kSub) return static_cast<unsigned>(v);
    const unsigned e = 63u - static_cast<unsigned>(__builtin_clzll(v));  // v in [2^e, 2^(e+1)), e >= kSubBits
    const unsigned sub = static_cast<unsigned>((v >> (e - kSubBits)) & (kSub - 1));
    return (e - kSubBits + 1) * static_cast<unsigned>(kSub) + sub;
  }
  // The largest value that falls into bucket i.
  static constexpr uint64_t bucket_upper(unsigned i) {
    if (i < kSub) return i;
    const unsigned e = i / static_cast<unsigned>(kSub) + kSubBits - 1;
    const uint64_t sub = i % kSub;
    const uint64_t width = uint64_t(1) << (e - kSubBits);
    const uint64_t lower = (uint64_t(1) << e) + sub * width;
    return lower + (width - 1);
  }

 private:
  static constexpr uint64_t min(uint64_t a, uint64_t b) { return a < b ? a : b; }
  static uint64_t quantile_of(const uint64_t* counts, uint64_t n, double q) {
    if (!n) return 0;
    if (q < 0) q = 0;
    if (q > 1) q = 1;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(n) + 0.999999);  // ceil, at least 1
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < kBuckets; i++) {
      seen += counts[i];
      if (seen >= rank) return bucket_upper(i);
    }
    return bucket_upper(kBuckets - 1);
  }

  std::atomic<uint64_t> buckets_[kBuckets] = {};
  std::atomic<uint64_t> max_{0};
};

static_assert(LatencyHistogram::bucket_of(~uint64_t(0)) == LatencyHistogram::kBuckets - 1);
static_assert(LatencyHistogram::bucket_upper(LatencyHistogram::kBuckets - 1) == ~uint64_t(0));
static_assert(LatencyHistogram::bucket_of(8) == 8 && LatencyHistogram::bucket_upper(8) == 8);
static_assert(LatencyHistogram::bucket_of(16) == 16 && LatencyHistogram::bucket_upper(15) == 15);

}  // namespace hvmm::abi
