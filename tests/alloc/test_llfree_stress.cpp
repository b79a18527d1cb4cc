// Concurrency stress: guest threads allocate and free random orders while a host thread hard-
// reclaims, returns and soft-reclaims huge frames, and guests install reclaimed frames they got.
// Invariants: no frame is handed out twice; a frame whose backing the host took is never handed
// out without `reclaimed`; at quiescence every counter matches a recount of the bitfield.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "guest-alloc/llfree.hpp"
#include "guest-alloc/llfree_host.hpp"
#include "tests/alloc/host_scan.hpp"
#include "test_zone.hpp"

using namespace hvmm::alloc;
using hvmm::alloc::test::TestZone;

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr auto kDuration = std::chrono::milliseconds(1500);
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr auto kDuration = std::chrono::milliseconds(1500);
#else
constexpr auto kDuration = std::chrono::milliseconds(3000);
#endif
#else
constexpr auto kDuration = std::chrono::milliseconds(3000);
#endif

enum HostState : uint8_t { kInstalled = 0, kSoft = 1, kHard = 2 };

struct Harness {
  static constexpr unsigned kGuests = 3;
  static constexpr uint64_t kFrames = 128 * 512;  // 256 MiB: 16 trees

  TestZone z{kFrames, kGuests};
  SharedView view = z.a.shared();
  std::vector<std::atomic<uint32_t>> owner = std::vector<std::atomic<uint32_t>>(kFrames);
  std::vector<std::atomic<uint8_t>> state = std::vector<std::atomic<uint8_t>>(kFrames / 512);
  std::mutex host_mutex;  // serialises host operations, as the VMM's per-zone mutex does
  std::atomic<bool> stop{false};

  std::atomic<uint64_t> double_handouts{0}, bad_reclaimed{0}, hard_handed_out{0}, put_errors{0};
  std::atomic<uint64_t> gets{0}, reclaimed_gets{0}, installs{0};
  uint64_t hard = 0, returns = 0, softs = 0;

  // The install handler: the host populates the frame, marks it installed, then clears the flag.
  void install(uint64_t first_child, uint64_t count) {
    std::lock_guard lock(host_mutex);
    for (uint64_t c = first_child; c < first_child + count; ++c) {
      const uint8_t s = state[c].load();
      if (s == kHard) ++hard_handed_out;
      if (s != kInstalled) {
        state[c].store(kInstalled);
        ++installs;
      }
      host::clear_reclaimed(view, c);
    }
  }

  void guest(unsigned cpu) {
    std::mt19937_64 rng(1234 + cpu);
    std::vector<std::pair<uint64_t, unsigned>> held;
    const uint32_t me = cpu + 1;
    while (!stop.load(std::memory_order_relaxed)) {
      const bool do_get = held.empty() || (held.size() < 64 && rng() % 100 < 55);
      if (do_get) {
        const uint64_t dice = rng() % 100;
        const unsigned order = dice < 50 ? 0 : dice < 80 ? static_cast<unsigned>(1 + rng() % 8) : dice < 95 ? 9 : 10;
        const Result r = z.a.get(cpu, order);
        if (!r.ok()) continue;
        ++gets;
        const uint64_t n = uint64_t{1} << order, c0 = r.frame / 512, nc = order >= 9 ? n / 512 : 1;
        if (r.reclaimed) {
          ++reclaimed_gets;
          install(c0, nc);
        } else {
          for (uint64_t c = c0; c < c0 + nc; ++c)
            if (state[c].load() != kInstalled) ++bad_reclaimed;
        }
        for (uint64_t f = r.frame; f < r.frame + n; ++f)
          if (owner[f].exchange(me) != 0) ++double_handouts;
        held.emplace_back(r.frame, order);
      } else {
        const size_t i = rng() % held.size();
        const auto [frame, order] = held[i];
        held[i] = held.back();
        held.pop_back();
        for (uint64_t f = frame; f < frame + (uint64_t{1} << order); ++f)
          if (owner[f].exchange(0) != me) ++double_handouts;
        if (z.a.put(cpu, frame, order) != Error::kOk) ++put_errors;
      }
    }
    for (auto [frame, order] : held) {
      for (uint64_t f = frame; f < frame + (uint64_t{1} << order); ++f) owner[f].store(0);
      if (z.a.put(cpu, frame, order) != Error::kOk) ++put_errors;
    }
    z.a.drain(cpu);
  }

  void hypervisor() {
    std::mt19937_64 rng(99);
    const uint64_t nchildren = view.children_count();
    while (!stop.load(std::memory_order_relaxed)) {
      {
        std::lock_guard lock(host_mutex);
        const uint64_t dice = rng() % 100, hint = rng() % nchildren;
        if (dice < 35) {
          const test::Found f = test::find_and_hard_reclaim(view, hint);
          if (f.ok) {
            state[f.huge_idx].store(kHard);
            ++hard;
          }
        } else if (dice < 70) {
          for (uint64_t i = 0; i < nchildren; ++i) {
            const uint64_t c = (hint + i) % nchildren;
            if (state[c].load() != kHard) continue;
            if (host::return_huge(view, c)) {
              state[c].store(kSoft);
              ++returns;
            }
            break;
          }
        } else {
          const test::Found f = test::find_and_soft_reclaim(view, hint);
          if (f.ok) {
            state[f.huge_idx].store(kSoft);
            ++softs;
          }
        }
      }
      if (rng() % 16 == 0) std::this_thread::yield();
    }
  }
};

}  // namespace

TEST_CASE("stress: guests allocate and free while the host reclaims and returns") {
  auto h = std::make_unique<Harness>();
  REQUIRE(h->z.ok);
  h->z.a.reserve_range(1000, 3000);  // some permanently used memory, like a kernel image

  std::vector<std::thread> threads;
  for (unsigned cpu = 0; cpu < Harness::kGuests; ++cpu) threads.emplace_back([&h, cpu] { h->guest(cpu); });
  threads.emplace_back([&h] { h->hypervisor(); });
  std::this_thread::sleep_for(kDuration);
  h->stop = true;
  for (auto& t : threads) t.join();

  INFO("gets " << h->gets << ", reclaimed gets " << h->reclaimed_gets << ", installs " << h->installs << ", hard "
               << h->hard << ", returns " << h->returns << ", soft " << h->softs);
  CHECK(h->double_handouts == 0);
  CHECK(h->bad_reclaimed == 0);
  CHECK(h->hard_handed_out == 0);
  CHECK(h->put_errors == 0);
  // The run exercised every path.
  CHECK(h->gets > 1000);
  CHECK(h->reclaimed_gets > 0);
  CHECK(h->hard > 0);
  CHECK(h->returns > 0);
  CHECK(h->softs > 0);

  // Quiescence: recount, then give back what the host still holds and recount again.
  const CheckResult c = h->z.a.check();
  CHECK(c.bad_children == 0);
  CHECK(c.bad_trees == 0);
  CHECK(c.skipped_trees == 0);
  for (uint64_t i = 0; i < h->view.children_count(); ++i)
    if (h->state[i].load() == kHard) {
      CHECK(host::return_huge(h->view, i));
    }
  CHECK(h->z.a.free_frames() == Harness::kFrames - 3000);
  CHECK(h->z.a.check().ok());
  for (uint64_t f = 0; f < Harness::kFrames; ++f) REQUIRE(h->owner[f].load() == 0);
}
