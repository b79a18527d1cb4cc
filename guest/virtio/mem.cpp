#include "guest/virtio/mem.hpp"

#include <atomic>
#include <cstring>

#include "guest/arch.hpp"
#include "guest/console.hpp"
#include "guest/hypercall.hpp"
#include "guest/mem.hpp"
#include "guest/percpu.hpp"
#include "guest/virtio/virtq.hpp"

namespace guest::virtio {
namespace {
using namespace hvmm::abi::virtio::mem;
using hvmm::abi::virtio::mem::Config;
constexpr uint64_t kHuge = 2ull << 20;
constexpr uint64_t kSecond = 1'000'000'000;
constexpr uint64_t kPollNs = kSecond / 2;      // safety net next to the config-change wake
constexpr uint64_t kReportNs = kSecond;        // free-memory reports to the host
constexpr uint64_t kMaxRegionEnd = 4ull << 40;  // far beyond any hvmm layout: a sanity bound
constexpr uint64_t kMaxRunBlocks = 0xffff;      // nb_blocks is 16 bits

struct Driver {
  MmioDevice dev;
  Virtq vq;
  Request* req = nullptr;
  Response* resp = nullptr;
  uint64_t block = 0, addr = 0, region = 0, usable_blocks = 0, frames_per_block = 0;
  uint64_t* bits = nullptr;  // 1 = plugged (the driver's view, changed only on ACK)
  uint64_t plugged = 0;      // bytes
  uint64_t requested = 0;
  uint32_t plug_gen = 0;     // bumped after every plug; the OOM hook waits on it
  unsigned workload_cpus = 0;
  uint32_t oom_retries[kMaxCpus] = {};  // per workload CPU: retries without a plug in between
  uint64_t plugs = 0, unplugs = 0, refusals = 0, busy_blocks = 0;
  bool live = false;
};
Driver g;
uint32_t g_idle = 0;  // never changes: the loop waits on it until wake_all() or a timeout

uint64_t read64(const MmioDevice& d, uint32_t field) {
  const uint32_t off = mmio_reg::kConfig + field;
  return d.read(off) | (uint64_t(d.read(off + 4)) << 32);
}

bool find_device(const BootInfo& boot, MmioDevice& out) {
  for (unsigned i = 0; i < boot.virtio_count; i++) {
    MmioDevice d(boot.virtio[i].start);
    if (d.read(mmio_reg::kMagicValue) == mmio_reg::kMagic && d.read(mmio_reg::kVersion) == mmio_reg::kVersion2 &&
        d.read(mmio_reg::kDeviceId) == kDeviceId) {
      out = d;
      return true;
    }
  }
  return false;
}

bool test_bit(uint64_t b) { return (g.bits[b / 64] >> (b % 64)) & 1; }
void set_bits(uint64_t first, uint64_t n, bool on) {
  for (uint64_t b = first; b < first + n; b++) {
    if (on) g.bits[b / 64] |= 1ull << (b % 64);
    else g.bits[b / 64] &= ~(1ull << (b % 64));
  }
}
uint64_t first_huge(uint64_t block) { return (g.addr + block * g.block) / kHuge; }

// One request, answered synchronously inside the notify (the host walks the queue in the exit).
uint16_t send(uint16_t type, uint64_t first_block, uint64_t nb) {
  *g.req = Request{type, {0, 0, 0}, g.addr + first_block * g.block, static_cast<uint16_t>(nb), {0, 0, 0}};
  g.resp->type = 0xffff;
  VirtqBuf b[2] = {{reinterpret_cast<uintptr_t>(g.req), sizeof(Request), false},
                   {reinterpret_cast<uintptr_t>(g.resp), sizeof(Response), true}};
  if (!g.vq.add(b, 2)) return kRespError;
  g.vq.kick();
  uint16_t head;
  uint32_t len;
  bool answered = false;
  while (g.vq.pop_used(head, len)) answered = len >= sizeof(Response);
  return answered ? g.resp->type : kRespError;
}

void give_frames(uint64_t first_block, uint64_t n) {
  for (uint64_t h = first_huge(first_block), e = h + n * g.frames_per_block; h < e; h++) mem_give_huge(h);
}

// Plugs one run of unplugged blocks towards requested_size. False when nothing moved.
bool plug_some() {
  const uint64_t want = (g.requested - g.plugged) / g.block;
  if (want == 0) return false;
  uint64_t b = 0;
  while (b < g.usable_blocks && test_bit(b)) b++;
  if (b == g.usable_blocks) return false;
  uint64_t n = 0;
  while (b + n < g.usable_blocks && n < want && n < kMaxRunBlocks && !test_bit(b + n)) n++;
  const uint16_t r = send(kReqPlug, b, n);
  if (r != kRespAck) {
    g.refusals++;
    return false;
  }
  set_bits(b, n, true);
  g.plugged += n * g.block;
  g.plugs++;
  give_frames(b, n);
  std::atomic_ref<uint32_t>(g.plug_gen).fetch_add(1, std::memory_order_release);
  wake(&g.plug_gen);
  return true;
}

// Takes every 2 MiB frame of a plugged block out of the allocator, or none.
bool take_block(uint64_t b, bool touched_only) {
  const uint64_t h0 = first_huge(b);
  if (touched_only)
    for (uint64_t i = 0; i < g.frames_per_block; i++)
      if (!mem_huge_touched(h0 + i)) return false;
  for (uint64_t i = 0; i < g.frames_per_block; i++) {
    if (mem_take_huge(h0 + i)) continue;
    while (i-- > 0) mem_give_huge(h0 + i);
    return false;
  }
  return true;
}

// Unplugs the taken run [first, first+n); gives the frames back if the device refuses.
bool flush_unplug(uint64_t first, uint64_t n) {
  if (n == 0) return false;
  if (send(kReqUnplug, first, n) != kRespAck) {
    g.refusals++;
    give_frames(first, n);
    return false;
  }
  set_bits(first, n, false);
  g.plugged -= n * g.block;
  g.unplugs++;
  return true;
}

// Unplugs wholly free blocks towards requested_size, highest first; touched (resident) blocks in a
// first pass, since unplugging them is what gives the host memory back. False when nothing moved.
bool unplug_some() {
  bool progress = false;
  for (int pass = 0; pass < 2; pass++) {
    uint64_t want = (g.plugged - g.requested) / g.block;
    uint64_t lo = 0, n = 0;  // the run being collected: [lo, lo + n), grown downwards
    for (uint64_t b = g.usable_blocks; b-- > 0 && want > 0;) {
      if (!test_bit(b) || !take_block(b, pass == 0)) continue;
      if (n && (b + 1 != lo || n == kMaxRunBlocks)) {
        progress |= flush_unplug(lo, n);
        n = 0;
      }
      lo = b;
      n++;
      want--;
    }
    progress |= flush_unplug(lo, n);
    if (g.plugged <= g.requested) break;
  }
  return progress;
}

void read_requested() {
  const uint64_t r = read64(g.dev, offsetof(Config, requested_size));
  // The host's word, bounded by what can be plugged.
  const uint64_t max = g.usable_blocks * g.block;
  g.requested = (r > max ? max : r) / g.block * g.block;
}

// mem_alloc's OOM hook on a workload CPU: tell the host at once and wait a little for a plug.
// Another CPU's plug may already have brought memory: then retry at once (a few times in a row at
// most, since free memory may be too fragmented for the order asked for).
bool oom_hook() {
  if (!g.live || this_cpu()->id >= g.workload_cpus) return false;
  uint32_t& retries = g.oom_retries[this_cpu()->id];
  if (mem_free_bytes() >= 2 * kHuge && retries < 3) {
    retries++;
    return true;
  }
  const uint32_t gen = std::atomic_ref<uint32_t>(g.plug_gen).load(std::memory_order_acquire);
  // 1: the host's automatic mode may grow the VM; otherwise nobody will, and the allocation fails.
  if (hypercall(hvmm::abi::Hypercall::kVirtioMemFree, mem_free_bytes(), 1) != 1) return false;
  if (!wait_changed(&g.plug_gen, gen, 5 * kSecond)) return false;  // no plug within 5 s
  retries = 0;
  return true;
}

bool fail(const char* why) {
  kprintf("virtio-mem: %s; running without hot-plugged memory\n", why);
  g.dev.write(mmio_reg::kStatus, g.dev.read(mmio_reg::kStatus) | kStatusFailed);
  return false;
}

uint64_t to_ns(uint64_t ticks, uint64_t hz) {
  return hz ? static_cast<uint64_t>((unsigned __int128)ticks * kSecond / hz) : 0;
}
}  // namespace

bool virtio_mem_region(const BootInfo& boot, uint64_t& addr, uint64_t& size) {
  MmioDevice d;
  if (!find_device(boot, d)) return false;
  const uint64_t bs = read64(d, offsetof(Config, block_size)), a = read64(d, offsetof(Config, addr)),
                 s = read64(d, offsetof(Config, region_size));
  // Only the host tells us this, but a nonsensical region would wreck the allocator: refuse it.
  if (bs < kHuge || (bs & (bs - 1)) || a % bs || s % bs || s == 0 || a >= kMaxRegionEnd || s > kMaxRegionEnd - a) {
    kprintf("virtio-mem: bad region 0x%lx+0x%lx (block 0x%lx); ignoring the device\n", a, s, bs);
    return false;
  }
  addr = a;
  size = s;
  return true;
}

bool virtio_mem_init(const BootInfo& boot) {
  if (!find_device(boot, g.dev)) return false;
  uint64_t region_addr, region_size;
  if (!virtio_mem_region(boot, region_addr, region_size) || region_addr != mem_hotplug_start())
    return fail("the region is not the one the allocator covers");
  MmioDevice& d = g.dev;
  g.workload_cpus = boot.cpus;
  g.block = read64(d, offsetof(Config, block_size));
  g.addr = region_addr;
  g.region = region_size;
  const uint64_t usable = read64(d, offsetof(Config, usable_region_size));
  g.usable_blocks = (usable > region_size ? region_size : usable) / g.block;
  g.frames_per_block = g.block / kHuge;

  const uint64_t offered = d.reset_and_read_features();
  const uint64_t want = kFeatureVersion1 | kFeatureUnpluggedInaccessible;
  if ((offered & want) != want) return fail("the device does not offer VERSION_1 and UNPLUGGED_INACCESSIBLE");
  d.write(mmio_reg::kDriverFeaturesSel, 0);
  d.write(mmio_reg::kDriverFeatures, static_cast<uint32_t>(want));
  d.write(mmio_reg::kDriverFeaturesSel, 1);
  d.write(mmio_reg::kDriverFeatures, static_cast<uint32_t>(want >> 32));
  d.write(mmio_reg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  if (!(d.read(mmio_reg::kStatus) & kStatusFeaturesOk)) return fail("the device refused our features");

  // Request and response in one page of boot memory (allocated before anything is plugged).
  uint64_t page, bitmap;
  const uint64_t words = (g.usable_blocks + 63) / 64;
  unsigned order = 0;
  while ((kPageSize << order) < words * 8) order++;
  if (!mem_alloc(0, page) || !mem_alloc(order, bitmap)) return fail("no memory for the driver");
  g.req = static_cast<Request*>(frame_ptr(page));
  g.resp = reinterpret_cast<Response*>(static_cast<uint8_t*>(frame_ptr(page)) + 64);
  g.bits = static_cast<uint64_t*>(frame_ptr(bitmap));
  memset(g.bits, 0, words * 8);
  if (!g.vq.init(d, 0, false)) return fail("queue set-up failed");
  d.write(mmio_reg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);

  // Whatever a previous driver left plugged is not in our allocator: start from nothing (§5.15.5).
  if (read64(d, offsetof(Config, plugged_size)) != 0 && send(kReqUnplugAll, 0, 0) != kRespAck)
    return fail("UNPLUG_ALL at start-up failed");
  g.live = true;
  mem_set_oom_hook(oom_hook);
  read_requested();
  while (plug_some()) {
  }
  kprintf("virtio-mem: region %lu MiB at 0x%lx in %lu KiB blocks, %lu MiB plugged\n", g.region >> 20, g.addr,
          g.block >> 10, g.plugged >> 20);
  return true;
}

void virtio_mem_loop(const BootInfo& boot) {
  uint64_t last_report = 0, move_start = rdtsc(), seen_requested = g.requested;
  bool moving = false;
  for (;;) {
    const uint32_t isr = g.dev.read(mmio_reg::kInterruptStatus);
    if (isr) g.dev.write(mmio_reg::kInterruptAck, isr);
    read_requested();  // every round, not only on a config change: one exit, and the safety net
    if (g.requested != seen_requested) {
      seen_requested = g.requested;
      moving = true;
      move_start = rdtsc();
    }
    bool more = false;
    if (g.plugged < g.requested) more = plug_some();
    else if (g.plugged > g.requested) more = unplug_some();
    if (moving && !more) {
      kprintf("virtio-mem: %lu MiB plugged (requested %lu MiB%s) after %lu ms\n", g.plugged >> 20, g.requested >> 20,
              g.plugged == g.requested ? ", reached" : ", no more free blocks for now",
              to_ns(rdtsc() - move_start, boot.tsc_hz) / 1000000);
      moving = false;
    }
    const uint64_t now = host_now_ns();
    if (now - last_report >= kReportNs) {
      hypercall(hvmm::abi::Hypercall::kVirtioMemFree, mem_free_bytes(), 0);
      last_report = now;
    }
    if (!more) wait_on(&g_idle, 0, kPollNs);
  }
}

}  // namespace guest::virtio
