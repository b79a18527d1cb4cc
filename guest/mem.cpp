#include "guest/mem.hpp"

#include <atomic>
#include <cstring>

#include "abi/hyperalloc.hpp"
#include "guest-alloc/buddy.hpp"
#include "abi/latency_histogram.hpp"
#include "guest-alloc/llfree_host.hpp"
#include "guest/arch.hpp"
#include "guest/console.hpp"
#include "guest/hypercall.hpp"
#include "guest/percpu.hpp"
#include "guest/virtio/mem.hpp"

extern "C" char __kernel_end[];

namespace guest {
namespace {
using hvmm::alloc::Error;
using hvmm::alloc::kFramesPerChild;

hvmm::alloc::LLFree g_alloc;
// --guest-alloc buddy: the Linux-like buddy allocator manages the frames instead (guest-alloc/buddy.hpp).
// No HyperAlloc and no virtio-mem with it (the CLI refuses both): only the balloon hooks apply.
hvmm::alloc::Buddy g_buddy;
bool g_use_buddy = false;
uint64_t g_managed = 0;  // bytes the allocator manages: RAM plus plugged virtio-mem blocks
int g_install_port = -1;
uint64_t g_installs = 0;
uint64_t g_install_cycles = 0;  // TSC cycles spent in install exits, as the guest sees them
hvmm::abi::LatencyHistogram g_install_latency;  // the same, per install (exit to resume), in TSC cycles
hvmm::abi::hyperalloc::Registration g_registration;
// Balloon driver hooks (mem.hpp): deflate-on-OOM and the free-page-reporting marks.
bool (*g_oom_hook)() = nullptr;
uint64_t* g_reported = nullptr;
uint64_t g_hotplug_start = 0, g_hotplug_size = 0;  // the virtio-mem region, if any

// The 2 MiB frames a block of 2^order frames covers: [first, last].
struct HugeSpan {
  uint64_t first, last;
};
HugeSpan huge_span(uint64_t frame, unsigned order) {
  return {frame / kFramesPerChild, (frame + (1ull << order) - 1) / kFramesPerChild};
}

// An allocated huge frame is no longer "reported" (free page reporting marks).
void clear_reported(uint64_t h) {
  if (!g_reported) return;
  std::atomic_ref<uint64_t> w(g_reported[h / 64]);
  const uint64_t bit = 1ull << (h % 64);
  if (w.load(std::memory_order_relaxed) & bit) w.fetch_and(~bit, std::memory_order_relaxed);  // rarely set
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }


void register_with_host() {
  g_registration = mem_registration();
  int64_t rc = hypercall(hvmm::abi::Hypercall::kHyperallocRegister, reinterpret_cast<uintptr_t>(&g_registration));
  if (rc != 0) {
    kprintf("hyperalloc: the host refused our registration (status %ld); running without reclamation\n", rc);
    g_install_port = -1;
  }
}
}  // namespace

hvmm::alloc::LLFree& allocator() { return g_alloc; }

// Asks the host to give back the backing of one 2 MiB frame before the guest touches it.
void mem_install(uint64_t huge_idx) {
  if (g_install_port < 0) return;  // no hyperalloc device: nothing was ever taken
  const uint64_t t0 = rdtsc();
  outl(static_cast<uint16_t>(g_install_port), static_cast<uint32_t>(huge_idx));
  const uint64_t cycles = rdtsc() - t0;
  std::atomic_ref<uint64_t>(g_install_cycles).fetch_add(cycles, std::memory_order_relaxed);
  g_install_latency.record(cycles);
  std::atomic_ref<uint64_t>(g_installs).fetch_add(1, std::memory_order_relaxed);
}

int mem_install_port() { return g_install_port; }

// A block whose allocation said `reclaimed` is about to be used: with HyperAlloc the host installs
// the frame (it clears the bit); otherwise we set the bit ourselves (see mem_init) and clear it.
static void reuse_reclaimed(uint64_t huge_idx) {
  if (g_install_port >= 0) mem_install(huge_idx);
  else hvmm::alloc::host::clear_reclaimed(g_alloc.shared(), huge_idx);
}

// The buddy allocator over all RAM: metadata after the kernel image, then every RAM frame that is not
// boot data or metadata is freed into it (as Linux's memblock_free_all hands memory to the buddy).
static void buddy_init(const BootInfo& boot, uint64_t end) {
  const uint64_t frames = align_up(end, kFramesPerChild * kPageSize) / kPageSize;
  const uint64_t meta = align_up(reinterpret_cast<uintptr_t>(__kernel_end), 64);
  const uint64_t meta_end = align_up(meta + hvmm::alloc::Buddy::meta_bytes(frames), kPageSize);
  if (!g_buddy.init(frames, reinterpret_cast<void*>(meta))) panic("mem: buddy allocator init failed");
  for (unsigned i = 0; i < boot.ram_count; i++) {
    uint64_t cur = boot.ram[i].start / kPageSize, stop = (boot.ram[i].start + boot.ram[i].size) / kPageSize;
    if (cur < meta_end / kPageSize) cur = meta_end / kPageSize;
    while (cur < stop) {  // [cur, next): free, up to the next reserved range
      uint64_t next = stop;
      bool inside = false;
      for (unsigned r = 0; r < boot.reserved_count; r++) {
        const uint64_t a = boot.reserved[r].start / kPageSize;
        const uint64_t b = align_up(boot.reserved[r].start + boot.reserved[r].size, kPageSize) / kPageSize;
        if (a <= cur && cur < b) inside = true, next = b;
        else if (!inside && a > cur && a < next) next = a;
      }
      if (next > stop) next = stop;
      if (!inside) g_buddy.free_range(cur, next - cur);
      cur = next;
    }
  }
}

void mem_init(const BootInfo& boot) {
  g_managed = boot.ram_bytes;
  uint64_t end = 0;
  for (unsigned i = 0; i < boot.ram_count; i++) end = end > boot.ram[i].start + boot.ram[i].size ? end : boot.ram[i].start + boot.ram[i].size;
  if (boot.buddy) {
    g_use_buddy = true;
    buddy_init(boot, end);
    if (boot.hyperalloc_port >= 0) kprintf("mem: buddy allocator: HyperAlloc needs LLFree; not registering\n");
    return;
  }
  // A virtio-mem region above RAM: the allocator covers it from the start, so it can grow into it.
  if (virtio::virtio_mem_region(boot, g_hotplug_start, g_hotplug_size) && g_hotplug_start >= end &&
      g_hotplug_start % (kFramesPerChild * kPageSize) == 0)
    end = g_hotplug_start + g_hotplug_size;
  else
    g_hotplug_start = g_hotplug_size = 0;
  const uint64_t frames = align_up(end, kFramesPerChild * kPageSize) / kPageSize;
  // Service CPUs (balloon driver) allocate too: they get allocator slots after the workload CPUs.
  const unsigned cpus = boot.cpus + boot.service_cpus;
  auto sz = hvmm::alloc::LLFree::sizes(frames, cpus);

  // Allocator state right after the kernel image, each array 64-byte aligned.
  uint64_t p = reinterpret_cast<uintptr_t>(__kernel_end);
  auto place = [&](const hvmm::alloc::Region& r) {
    p = align_up(p, r.align);
    void* at = reinterpret_cast<void*>(p);
    p += r.bytes;
    return at;
  };
  void* trees = place(sz.trees);
  void* children = place(sz.children);
  void* bitfield = place(sz.bitfield);
  void* locals = place(sz.locals);
  const uint64_t meta_end = align_up(p, kPageSize);
  if (!g_alloc.init(cpus, frames, trees, children, bitfield, locals)) panic("mem: allocator init failed");

  // Used: [0, end of our state), every gap between RAM ranges, and reserved boot data.
  g_alloc.reserve_range(0, meta_end / kPageSize);
  uint64_t cursor = 0;
  for (unsigned i = 0; i < boot.ram_count; i++) {
    const auto& r = boot.ram[i];
    if (r.start > cursor) g_alloc.reserve_range(cursor / kPageSize, (r.start - cursor) / kPageSize);
    cursor = r.start + r.size;
  }
  if (frames * kPageSize > cursor) g_alloc.reserve_range(cursor / kPageSize, frames - cursor / kPageSize);
  for (unsigned i = 0; i < boot.reserved_count; i++)
    g_alloc.reserve_range(boot.reserved[i].start / kPageSize, align_up(boot.reserved[i].size, kPageSize) / kPageSize);
  // Not plugged yet: allocated as reclaimed huge frames, which the driver frees as it plugs them.
  if (g_hotplug_size)
    g_alloc.reserve_huge(g_hotplug_start / (kFramesPerChild * kPageSize), g_hotplug_size / (kFramesPerChild * kPageSize));

  g_install_port = boot.hyperalloc_port;
  // `hvmm.no_register` on the command line: boot without registering (for hostile-record tests).
  if (strstr(boot.bootargs, "hvmm.no_register")) g_install_port = -1;
  if (g_install_port >= 0) register_with_host();

  // Without HyperAlloc the `reclaimed` bit is the guest's own: it marks huge frames whose memory the
  // host has (never touched, or handed back by free page reporting), and LLFree's preference for
  // frames without the bit then makes the guest reuse resident memory first, as Linux's allocator
  // prefers hot pages and queues reported ones last. With HyperAlloc the bit belongs to the host.
  // With virtio-mem, boot memory is never given back: leaving it unmarked makes the guest fill it
  // first and keep the hot-plugged frames free, so that they can be unplugged (as Linux keeps
  // hot-plugged memory in ZONE_MOVABLE). The plugged frames carry the bit until first use.
  if (g_install_port < 0 && !g_hotplug_size) {
    auto v = g_alloc.shared();
    for (uint64_t h = 0; h < v.children_count(); h++) hvmm::alloc::host::soft_reclaim(v, h);
  }
}

bool mem_alloc(unsigned order, uint64_t& frame) {
  if (g_use_buddy) {
    while (!g_buddy.get(order, frame))
      if (!g_oom_hook || !g_oom_hook()) return false;
    for (auto [h, last] = huge_span(frame, order); h <= last; h++) clear_reported(h);
    return true;
  }
  auto r = g_alloc.get(this_cpu()->id, order);
  while (!r.ok()) {  // deflate-on-OOM: the balloon may give some memory back, then we retry
    if (!g_oom_hook || !g_oom_hook()) return false;
    r = g_alloc.get(this_cpu()->id, order);
  }
  frame = r.frame;
  for (auto [h, last] = huge_span(r.frame, order); h <= last; h++) {
    clear_reported(h);
    if (r.reclaimed) reuse_reclaimed(h);
  }
  return true;
}

void mem_free(uint64_t frame, unsigned order) {
  if (g_use_buddy ? g_buddy.put(frame, order) != hvmm::alloc::Buddy::Error::kOk
                  : g_alloc.put(this_cpu()->id, frame, order) != Error::kOk) {
    kprintf("mem: bad free of frame %#lx order %u\n", frame, order);
    panic("mem: bad free");
  }
}

void mem_set_oom_hook(bool (*hook)()) { g_oom_hook = hook; }
void mem_reported_init(uint64_t* bitmap) { g_reported = bitmap; }
void mem_mark_reported(uint64_t huge_idx) {
  if (g_reported && huge_idx < mem_huge_frames())
    std::atomic_ref<uint64_t>(g_reported[huge_idx / 64]).fetch_or(1ull << (huge_idx % 64), std::memory_order_relaxed);
}
uint64_t mem_huge_frames() { return (g_use_buddy ? g_buddy.frames() : g_alloc.frames()) / kFramesPerChild; }

bool mem_isolate_huge(uint64_t& frame, bool& reported) {
  if (g_use_buddy) {
    if (!g_buddy.get(kHugeOrder, frame)) return false;
    const uint64_t h = frame / kFramesPerChild;
    reported = g_reported && (std::atomic_ref<uint64_t>(g_reported[h / 64]).load(std::memory_order_relaxed) >> (h % 64)) & 1;
    return true;
  }
  auto r = g_alloc.get(this_cpu()->id, kHugeOrder);
  if (!r.ok()) return false;
  frame = r.frame;
  const uint64_t h = r.frame / kFramesPerChild;
  reported = g_reported && (std::atomic_ref<uint64_t>(g_reported[h / 64]).load(std::memory_order_relaxed) >> (h % 64)) & 1;
  if (r.reclaimed) reuse_reclaimed(h);
  return true;
}

void mem_mark_reclaimed(uint64_t huge_idx) {
  // Best effort: only a wholly free frame in an unreserved tree takes the bit.
  if (g_install_port < 0 && !g_use_buddy) hvmm::alloc::host::soft_reclaim(g_alloc.shared(), huge_idx);
}

void mem_free_reported(uint64_t frame) {
  if (g_use_buddy) {  // to the tail of its free list, as Linux puts reported pages
    if (g_buddy.put(frame, kHugeOrder, true) != hvmm::alloc::Buddy::Error::kOk) panic("mem: bad free of a reported block");
    return;
  }
  mem_free(frame, kHugeOrder);
  mem_mark_reclaimed(frame / kFramesPerChild);
}

bool mem_is_buddy() { return g_use_buddy; }
uint64_t mem_used_bytes() {
  const uint64_t managed = std::atomic_ref<uint64_t>(g_managed).load(std::memory_order_relaxed), free = mem_free_bytes();
  return managed > free ? managed - free : 0;
}

hvmm::abi::hyperalloc::Registration mem_registration() {
  auto v = g_alloc.shared();
  auto r = hvmm::abi::hyperalloc::layout_template();
  r.first_pfn = 0;
  r.frames = v.frames;
  r.trees_gpa = reinterpret_cast<uintptr_t>(v.trees);
  r.trees_len = v.trees_count() * sizeof(hvmm::alloc::Tree);
  r.children_gpa = reinterpret_cast<uintptr_t>(v.children);
  r.children_len = v.children_count() * sizeof(hvmm::alloc::Child);
  r.bitfield_gpa = reinterpret_cast<uintptr_t>(v.bitfield);
  r.bitfield_len = v.children_count() * sizeof(hvmm::alloc::Bitfield);
  return r;
}

uint64_t mem_hotplug_start() { return g_hotplug_start; }

void mem_give_huge(uint64_t huge_idx) {
  if (g_use_buddy) panic("mem: virtio-mem needs LLFree");
  std::atomic_ref<uint64_t>(g_managed).fetch_add(kFramesPerChild * kPageSize, std::memory_order_relaxed);
  if (g_alloc.put(this_cpu()->id, huge_idx * kFramesPerChild, kHugeOrder) != Error::kOk) {
    kprintf("mem: virtio-mem frame 0x%lx was not reserved\n", huge_idx);
    panic("mem: bad hot-plug free");
  }
}

bool mem_take_huge(uint64_t huge_idx) {
  if (g_use_buddy) return false;  // virtio-mem plugs LLFree frames only
  if (!g_alloc.take_huge(huge_idx)) return false;
  std::atomic_ref<uint64_t>(g_managed).fetch_sub(kFramesPerChild * kPageSize, std::memory_order_relaxed);
  return true;
}

bool mem_huge_touched(uint64_t huge_idx) {
  if (g_use_buddy || huge_idx >= mem_huge_frames()) return false;
  const uint16_t w = std::atomic_ref<uint16_t>(g_alloc.shared().children[huge_idx].word).load(std::memory_order_relaxed);
  return !hvmm::alloc::Child::reclaimed_of(w);
}

uint64_t mem_free_bytes() { return (g_use_buddy ? g_buddy.free_frames() : g_alloc.free_frames()) * kPageSize; }
uint64_t mem_free_huge() { return g_use_buddy ? g_buddy.free_at_least(kHugeOrder) : g_alloc.free_huge(); }
uint64_t mem_installs() { return std::atomic_ref<uint64_t>(g_installs).load(std::memory_order_relaxed); }
const hvmm::abi::LatencyHistogram& mem_install_latency() { return g_install_latency; }
uint64_t mem_install_cycles() { return std::atomic_ref<uint64_t>(g_install_cycles).load(std::memory_order_relaxed); }

}  // namespace guest
