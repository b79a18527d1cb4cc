// Concurrency: guest threads allocate and free through LLFree in guest RAM (installing through the
// device's port whenever a result says reclaimed, writing a pattern into every block and verifying it
// before freeing) while the host resizes at random and the auto-reclaim thread runs. Nothing the
// guest holds may ever be discarded, and no host anomaly may appear. Bounded in time; TSan-clean.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "reclaim/hyperalloc_host.hpp"
#include "abi/ports.hpp"
#include "guest_zone.hpp"
#include "reclaim/auto_reclaim.hpp"

using namespace hvmm;
using namespace hvmm::reclaim;
using namespace hvmm::reclaim::test;

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr auto kDuration = std::chrono::milliseconds(1500);
#else
constexpr auto kDuration = std::chrono::milliseconds(2500);
#endif

constexpr unsigned kGuests = 3;
constexpr uint64_t kMaxHeldFrames = 7000;  // per guest thread; 3 x 7000 of 32768 frames
constexpr unsigned kOrders[] = {0, 0, 0, 1, 3, 5, 8, 9, 9, 10};

struct Block {
  uint64_t frame;
  unsigned order;
};

struct Counters {
  std::atomic<uint64_t> allocs{0}, reclaimed_allocs{0}, no_memory{0}, pattern_errors{0}, put_errors{0},
      not_installed{0};
};

void guest(unsigned cpu, GuestZone& g, HyperallocHost& host, const std::atomic<bool>& stop, Counters& c) {
  ZoneState& zs = *host.zone();
  std::mt19937_64 rng(cpu * 7919 + 1);
  std::vector<Block> held;
  uint64_t held_frames = 0;
  const uint64_t salt = cpu + 100;
  auto free_one = [&] {
    const size_t i = rng() % held.size();
    const Block b = held[i];
    held[i] = held.back();
    held.pop_back();
    held_frames -= uint64_t{1} << b.order;
    if (!verify_pattern(g.mem, b.frame, b.order, salt)) c.pattern_errors.fetch_add(1);
    if (g.a.put(cpu, b.frame, b.order) != alloc::Error::kOk) c.put_errors.fetch_add(1);
  };
  while (!stop.load(std::memory_order_relaxed)) {
    const bool want_alloc = held.empty() || (held_frames < kMaxHeldFrames && rng() % 100 < 55);
    if (!want_alloc) {
      free_one();
      continue;
    }
    const unsigned order = kOrders[rng() % std::size(kOrders)];
    const alloc::Result r = g.a.get(cpu, order);
    if (!r.ok()) {
      c.no_memory.fetch_add(1);
      if (!held.empty()) free_one();
      continue;
    }
    c.allocs.fetch_add(1);
    if (r.reclaimed) {
      c.reclaimed_allocs.fetch_add(1);
      for (uint64_t k = 0; k < child_count(order); ++k) {
        host.install(first_child(r) + k);  // what the guest's outl to the install port does
      }
    }
    // Whatever the guest holds must be INSTALLED in the host's table from now until it frees it.
    for (uint64_t k = 0; k < child_count(order); ++k)
      if (zs.state(first_child(r) + k) != HugeState::kInstalled) c.not_installed.fetch_add(1);
    write_pattern(g.mem, r.frame, order, salt);
    held.push_back({r.frame, order});
    held_frames += uint64_t{1} << order;
  }
  while (!held.empty()) free_one();
  g.a.drain(cpu);
}

}  // namespace

TEST_CASE("guests allocate and free while the host shrinks, grows and auto-reclaims") {
  GuestZone g({{0, 128 * MiB}}, kGuests);
  REQUIRE(g.ok);
  // The host as the VM runs it: its own auto-reclaim thread (started before registration, as the
  // VMM does), installs from the guest threads, resizes from another thread.
  HyperallocHost host(g.mem, {}, {std::chrono::milliseconds(2), 2, 4});
  host.start_auto(std::chrono::milliseconds(2));
  REQUIRE(host.register_zone(kRegGpa));
  ZoneState& zs = *host.zone();

  std::atomic<bool> stop{false};
  Counters c;
  std::vector<std::thread> threads;
  for (unsigned cpu = 0; cpu < kGuests; ++cpu)
    threads.emplace_back(guest, cpu, std::ref(g), std::ref(host), std::cref(stop), std::ref(c));
  uint64_t resizes = 0;
  std::thread resizer([&] {
    std::mt19937_64 rng(42);
    while (!stop.load()) {
      host.resize((16 + rng() % 113) * MiB);
      ++resizes;
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
    host.resize(g.mem.ram_bytes());
  });

  std::this_thread::sleep_for(kDuration);
  stop.store(true);
  for (auto& t : threads) t.join();
  resizer.join();
  const HyperallocStatus hs = host.status();
  host.stop();

  const ZoneStats s = zs.stats();
  INFO("allocs " << c.allocs << ", reclaimed allocs " << c.reclaimed_allocs << ", no memory " << c.no_memory
                 << ", resizes " << resizes << ", installs " << s.installs << " (+" << s.redundant_installs
                 << " redundant), hard " << s.hard_reclaims << ", returns " << s.returns << ", soft "
                 << s.soft_reclaims << ", auto scans " << (hs.auto_reclaim ? hs.auto_reclaim->stats.scans : 0));
  CHECK(c.pattern_errors == 0);
  CHECK(c.put_errors == 0);
  CHECK(c.not_installed == 0);
  CHECK(s.anomalies == 0);
  CHECK(s.discard_failures == 0);
  CHECK(s.populate_failures == 0);
  CHECK(hs.installs_before_registration == 0);
  CHECK(zs.audit() == 0);
  CHECK(g.a.check().ok());
  CHECK(s.hard == 0);  // the host's last act was a grow to all of RAM
  // The test must have exercised every path.
  CHECK(c.allocs > 100);
  CHECK(s.installs > 0);
  CHECK(s.hard_reclaims > 0);
  CHECK(s.returns > 0);
  CHECK(s.soft_reclaims > 0);
}
