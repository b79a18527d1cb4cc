#include "guest/virtio/balloon.hpp"

#include <atomic>
#include <cstring>

#include "guest/arch.hpp"
#include "guest/console.hpp"
#include "guest/frame_list.hpp"
#include "guest/mem.hpp"
#include "guest/percpu.hpp"

namespace guest::virtio {
namespace {
using namespace balloon;
constexpr uint32_t kConfigNumPagesReg = mmio_reg::kConfig + kConfigNumPages;
constexpr uint32_t kConfigActualReg = mmio_reg::kConfig + kConfigActual;
constexpr unsigned kBatch = 256;     // VIRTIO_BALLOON_ARRAY_PFNS_MAX
constexpr unsigned kOomPages = 256;  // VIRTIO_BALLOON_OOM_NR_PAGES
constexpr unsigned kOomHugePages = 1;  // the 2 MiB balloon gives one block back per failed allocation
constexpr unsigned kStatCount = 8;   // the statistics we send: tags 0..7

struct Driver {
  MmioDevice dev;
  Virtq inflate, deflate, stats, reporting;
  uint64_t features = 0;
  unsigned order = 0;           // of a balloon page: 0, or kHugeOrder with kFeatureHvmmHugePages
  uint32_t* pfns = nullptr;     // one page: the PFN array handed to the device
  uint8_t* stats_buf = nullptr; // one page
  // The frames in the balloon. With 4 KiB pages its list pages live in 2 MiB blocks of their own (see
  // guest/frame_list.hpp); with 2 MiB pages a list page cannot sit in a ballooned block, and a
  // dedicated 2 MiB block would be one fewer block to balloon, so single pages do (set in init).
  FrameList frames{true};
  uint32_t target = 0, actual = 0;  // in balloon pages of 2^order frames
  // After a deflate-on-OOM the driver does not inflate again until the host changes the target
  // (Linux only re-inflates on a config change).
  bool oom_hold = false;
  uint32_t oom_hold_target = 0;
  uint64_t oom_deflates = 0;
  uint32_t lock = 0;            // spinlock: service CPU vs. the OOM hook on workload CPUs
  uint32_t reporting_busy = 0;
  unsigned workload_cpus = 0;   // CPUs with a lower index run the workload
  uint64_t ram_bytes = 0;
  bool live = false;
};
Driver g;

void lock() {
  std::atomic_ref<uint32_t> l(g.lock);
  while (l.exchange(1, std::memory_order_acquire))
    while (l.load(std::memory_order_relaxed)) cpu_relax();
}
void unlock() { std::atomic_ref<uint32_t>(g.lock).store(0, std::memory_order_release); }

// Sends n PFNs on `q` and waits for the device (synchronous: done when kick() returns).
void tell_host(Virtq& q, unsigned n) {
  VirtqBuf b{reinterpret_cast<uintptr_t>(g.pfns), n * 4u, false};
  if (!q.add(&b, 1)) return;
  q.kick();
  uint16_t head;
  uint32_t len;
  while (q.pop_used(head, len)) {
  }
}

void write_actual() { g.dev.write(kConfigActualReg, g.actual); }

// Lock held. Allocates up to `want` frames; false when the allocator is out of memory.
bool fill_batch(unsigned want) {
  unsigned n = 0;
  bool out_of_memory = false;
  for (; n < want; n++) {
    uint64_t f;
    if (!mem_alloc(g.order, f)) {
      out_of_memory = true;
      break;
    }
    if (!g.frames.push(f)) {
      mem_free(f, g.order);
      out_of_memory = true;
      break;
    }
    g.pfns[n] = static_cast<uint32_t>(f);  // a 2 MiB block: the PFN of its first 4 KiB frame
  }
  if (n) {
    tell_host(g.inflate, n);
    g.actual += n;
    write_actual();
  }
  return !out_of_memory;
}

// Lock held. Gives back up to `want` frames: tell the host first, then free (MUST_TELL_HOST order).
unsigned leak_batch(unsigned want) {
  unsigned n = 0;
  for (uint64_t f; n < want && g.frames.pop(f); n++) g.pfns[n] = static_cast<uint32_t>(f);
  if (!n) return 0;
  tell_host(g.deflate, n);
  for (unsigned i = 0; i < n; i++) mem_free(g.pfns[i], g.order);
  g.actual -= n;
  write_actual();
  return n;
}

bool is_service_cpu() { return this_cpu()->id >= g.workload_cpus; }

// mem_alloc's OOM hook (a workload CPU): give 256 pages back, as Linux's OOM notifier does (one
// 2 MiB block with huge pages: enough for any allocation up to order 9, and no more than needed).
bool oom_hook() {
  if (!g.live || is_service_cpu() || !(g.features & kFeatureDeflateOnOom)) return false;
  if (std::atomic_ref<uint32_t>(g.reporting_busy).load(std::memory_order_acquire)) {
    // A reporting pass holds free blocks for a moment: wait for it, then retry.
    while (std::atomic_ref<uint32_t>(g.reporting_busy).load(std::memory_order_acquire)) cpu_relax();
    return true;
  }
  lock();
  const unsigned n = leak_batch(g.order ? kOomHugePages : kOomPages);
  if (n) {
    g.oom_hold = true;
    g.oom_hold_target = g.target;
    g.oom_deflates++;
  }
  unlock();
  return n != 0;
}

void fill_stats() {
  // Like Linux: MemTotal counts the balloon's pages (they are allocated, not removed).
  const uint64_t free = mem_free_bytes(), total = g.ram_bytes;
  const struct {
    uint16_t tag;
    uint64_t val;
  } s[kStatCount] = {{kStatSwapIn, 0}, {kStatSwapOut, 0}, {kStatMajorFaults, 0}, {kStatMinorFaults, 0}, {kStatMemFree, free}, {kStatMemTotal, total}, {kStatMemAvailable, free}, {kStatDiskCaches, 0}};
  for (unsigned i = 0; i < kStatCount; i++) {
    memcpy(g.stats_buf + i * kStatEntrySize, &s[i].tag, 2);
    memcpy(g.stats_buf + i * kStatEntrySize + 2, &s[i].val, 8);
  }
}

void queue_stats() {
  fill_stats();
  VirtqBuf b{reinterpret_cast<uintptr_t>(g.stats_buf), kStatCount * kStatEntrySize, false};
  if (g.stats.add(&b, 1)) g.stats.kick();
}

bool find_device(const BootInfo& boot) {
  for (unsigned i = 0; i < boot.virtio_count; i++) {
    MmioDevice d(boot.virtio[i].start);
    if (d.read(mmio_reg::kMagicValue) == mmio_reg::kMagic && d.read(mmio_reg::kVersion) == mmio_reg::kVersion2 &&
        d.read(mmio_reg::kDeviceId) == kDeviceId) {
      g.dev = d;
      return true;
    }
  }
  return false;
}

bool fail(const char* why) {
  kprintf("virtio-balloon: %s; running without the balloon\n", why);
  g.dev.write(mmio_reg::kStatus, g.dev.read(mmio_reg::kStatus) | kStatusFailed);
  return false;
}
}  // namespace

bool balloon_init(const BootInfo& boot) {
  if (!find_device(boot)) return false;
  g.workload_cpus = boot.cpus;
  g.ram_bytes = boot.ram_bytes;
  MmioDevice& d = g.dev;
  const uint64_t offered = d.reset_and_read_features();
  if (!(offered & kFeatureVersion1)) return fail("the device does not offer VERSION_1");
  g.features = offered & (kFeatureVersion1 | kFeatureStatsVq | kFeatureDeflateOnOom | kFeatureReporting |
                          kFeatureHvmmHugePages);
  d.write(mmio_reg::kDriverFeaturesSel, 0);
  d.write(mmio_reg::kDriverFeatures, static_cast<uint32_t>(g.features));
  d.write(mmio_reg::kDriverFeaturesSel, 1);
  d.write(mmio_reg::kDriverFeatures, static_cast<uint32_t>(g.features >> 32));
  d.write(mmio_reg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  if (!(d.read(mmio_reg::kStatus) & kStatusFeaturesOk)) return fail("the device refused our features");
  if (g.features & kFeatureHvmmHugePages) {
    g.order = kHugeOrder;
    g.frames = FrameList(false);
  }

  uint64_t pfn_page, stats_page;
  if (!mem_alloc(0, pfn_page) || !mem_alloc(0, stats_page)) return fail("no memory for the driver");
  g.pfns = static_cast<uint32_t*>(frame_ptr(pfn_page));
  g.stats_buf = static_cast<uint8_t*>(frame_ptr(stats_page));
  // Queue numbers follow the accepted features: inflate, deflate, [stats], [reporting].
  unsigned q = 0;
  if (!g.inflate.init(d, q++, false) || !g.deflate.init(d, q++, false)) return fail("inflate/deflate queue set-up failed");
  if ((g.features & kFeatureStatsVq) && !g.stats.init(d, q++, true)) return fail("statistics queue set-up failed");
  if (g.features & kFeatureReporting) {
    if (!g.reporting.init(d, q++, false) || g.reporting.size() < kMinReportingQueue) return fail("reporting queue set-up failed");
  }
  d.write(mmio_reg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  if (g.stats.ready()) queue_stats();
  g.live = true;
  mem_set_oom_hook(oom_hook);
  balloon_read_target();
  return true;
}

uint32_t balloon_ack_interrupt() {
  const uint32_t isr = g.dev.read(mmio_reg::kInterruptStatus);
  if (isr) g.dev.write(mmio_reg::kInterruptAck, isr);
  return isr;
}

void balloon_read_target() {
  const uint32_t t = g.dev.read(kConfigNumPagesReg);
  lock();
  g.target = t;
  if (g.oom_hold && t != g.oom_hold_target) g.oom_hold = false;
  unlock();
}

bool balloon_step(unsigned max_batches) {
  for (unsigned b = 0; b < max_batches; b++) {
    lock();
    const uint32_t target = g.target, actual = g.actual;
    bool more;
    if (target > actual && !g.oom_hold) {
      const unsigned want = target - actual < kBatch ? target - actual : kBatch;
      more = fill_batch(want) && g.actual < g.target;  // out of memory: retry later, as Linux does
    } else if (target < actual) {
      const unsigned want = actual - target < kBatch ? actual - target : kBatch;
      more = leak_batch(want) != 0 && g.actual > g.target;
    } else {
      more = false;
    }
    unlock();
    if (!more) return false;
  }
  return true;
}

void balloon_service_stats() {
  if (!g.stats.ready()) return;
  uint16_t head;
  uint32_t len;
  bool returned = false;
  while (g.stats.pop_used(head, len)) returned = true;
  if (returned) queue_stats();
}

BalloonInfo balloon_info() {
  lock();
  BalloonInfo i{g.target, g.actual, kPageSize << g.order, g.oom_deflates, (g.features & kFeatureReporting) != 0};
  unlock();
  return i;
}

Virtq* balloon_reporting_queue() { return g.reporting.ready() ? &g.reporting : nullptr; }

void balloon_set_reporting_busy(bool busy) {
  std::atomic_ref<uint32_t>(g.reporting_busy).store(busy ? 1 : 0, std::memory_order_release);
}

}  // namespace guest::virtio
