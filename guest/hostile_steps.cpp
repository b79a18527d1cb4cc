// Hidden test-only steps of a hostile guest (issue 13): each attacks one way into hvmm, as a
// malicious or broken guest kernel could, so that the KVM tests (tests/kvm/test_hostile.cpp) can
// check that hvmm stays up, answers `status`, counts what it refused, and exits cleanly. They are
// not listed in the unknown-step message; hvmm's own tests are their only users.
//
//   hostile-ports [FIRST LAST]  garbage to every I/O port (not the exit and UART ports), all widths on hvmm's
//   hostile-mmio            garbage to every register of every virtio-mmio window, and to empty slots
//   hostile-virtq           malicious split queues on every virtio device: rings outside RAM, loops,
//                           absurd lengths and indices
//   hostile-installs N      N install requests for frames out of range and never reclaimed
//   hostile-hypercalls N    N hypercalls with random numbers and arguments, requests outside RAM
//   hostile-words DURATION  random writes to this guest's own allocator words (the host reclaims
//                           meanwhile); the guest's allocator is garbage afterwards: end with `exit`
//   hostile-balloon-actual DURATION  keeps writing the balloon's `actual` = the host's target,
//                           without inflating a page (issue 13, defect 4)
#include "abi/layout.hpp"
#include "guest/arch.hpp"
#include "guest/console.hpp"
#include "guest/hypercall.hpp"
#include "guest/mem.hpp"
#include "guest/parse.hpp"
#include "guest/steps.hpp"
#include "guest/virtio/mmio.hpp"
#include "guest/workload.hpp"

namespace guest {
namespace {

using namespace hvmm::abi;
using virtio::MmioDevice;

uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
uint64_t rnd() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

inline void outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" ::"a"(v), "Nd"(port) : "memory"); }
inline uint8_t inb(uint16_t port) {
  uint8_t v;
  asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
  return v;
}
inline uint32_t inl(uint16_t port) {
  uint32_t v;
  asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
  return v;
}

bool in_range(uint16_t port, const hvmm::layout::PortRange& r) { return port >= r.base && port < r.base + r.len; }

uint64_t deadline_after(const StepArgs& a, uint64_t ns) { return rdtsc() + ns / 1000 * (a.boot->tsc_hz / 1000'000); }

// Values that are never a valid guest-physical request address: hvmm must refuse them.
constexpr uint32_t kBadGpa[] = {0xdeadbee0u, 0xfffffff0u, 0xfffffffcu, 0xd0000000u, 0xfee00000u};

uint32_t step_ports(const StepArgs& a) {
  // This project's host KVM (kvm_pvm) raises #GP in the guest for an `out` to some ports in
  // 0xffc0..0xffff (found by this step): the host kernel's doing, never reaching hvmm. Not by default.
  uint64_t first = 0, last = 0xffbf;
  if ((a.argc != 1 && a.argc != 3) ||
      (a.argc == 3 && (!parse_uint(a.argv[1], first) || !parse_uint(a.argv[2], last) || last > 0xffff || first > last)))
    return step_usage(a, "hostile-ports [FIRST LAST]");
  if (a.dry) return 0;
  uint64_t n = 0;
  for (uint32_t p = uint32_t(first); p <= last; p++) {
    const auto port = static_cast<uint16_t>(p);
    // The exit port ends the VM and the UART prints: both do what they should with garbage.
    if (in_range(port, hvmm::layout::kExitPorts) || in_range(port, hvmm::layout::kSerialPorts)) continue;
    const bool ours = in_range(port, hvmm::layout::kHypercallPorts) || in_range(port, hvmm::layout::kHyperallocInstallPorts);
    if (ours) {
      for (uint32_t v : kBadGpa) outl(port, v), n++;
      outb(port, 0xa5), outw(port, 0x5a5a), n += 2;
    } else {
      outl(port, static_cast<uint32_t>(rnd())), n++;
    }
    (void)inb(port);
    (void)inl(port);
    n += 2;
  }
  kprintf("hostile-ports: %lu port accesses, still running\n", n);
  return 0;
}

uint32_t step_mmio(const StepArgs& a) {
  if (a.argc != 1) return step_usage(a, "hostile-mmio");
  if (a.dry) return 0;
  uint64_t n = 0;
  // Every 4-byte register of every device window, then of the next (empty) slots.
  const unsigned windows = a.boot->virtio_count + 2;
  for (unsigned w = 0; w < windows; w++) {
    const uint64_t base = w < a.boot->virtio_count ? a.boot->virtio[w].start
                                                     : hvmm::layout::kVirtioMmioBase + (a.boot->virtio_count + w) * 0x1000;
    MmioDevice d(base);
    for (uint32_t off = 0; off < virtio::mmio_reg::kSlotSize; off += 4) {
      if (off == virtio::mmio_reg::kQueueNotify) continue;  // hostile-virtq does notifications with intent
      d.write(off, static_cast<uint32_t>(rnd()));
      (void)d.read(off);
      n += 2;
    }
    d.write(virtio::mmio_reg::kStatus, 0);  // reset: leave the device usable for the next step
  }
  // Unassigned addresses of the MMIO hole and just above RAM.
  const uint64_t holes[] = {0xd0100000ull, 0xe0000000ull, 0xfec00000ull - 0x1000, a.boot->ram_bytes + 0x1000};
  for (uint64_t h : holes) {
    if (h >= 0xfec00000ull && h < 0xff000000ull) continue;  // the IOAPIC/APIC windows, if KVM has them
    MmioDevice d(h);
    d.write(0, 0xdeadbeef);
    (void)d.read(0);
    n += 2;
  }
  kprintf("hostile-mmio: %lu MMIO accesses, still running\n", n);
  return 0;
}

// Descriptor table, rings and a buffer in a page of our own; the attacks point the device at it.
struct alignas(4096) QueuePage {
  struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
  } desc[16];
  uint16_t avail[2 + 16];
  alignas(4) uint16_t used[2 + 16 * 4];
  uint32_t buf[64];
};
QueuePage g_qp;

void set_queue(const MmioDevice& d, unsigned q, uint64_t desc, uint64_t avail, uint64_t used, uint32_t num) {
  using namespace virtio::mmio_reg;
  d.write(kQueueSel, q);
  d.write(kQueueNum, num);
  d.write(kQueueDescLow, uint32_t(desc)), d.write(kQueueDescHigh, uint32_t(desc >> 32));
  d.write(kQueueDriverLow, uint32_t(avail)), d.write(kQueueDriverHigh, uint32_t(avail >> 32));
  d.write(kQueueDeviceLow, uint32_t(used)), d.write(kQueueDeviceHigh, uint32_t(used >> 32));
  d.write(kQueueReady, 1);
}

uint32_t step_virtq(const StepArgs& a) {
  if (a.argc != 1) return step_usage(a, "hostile-virtq");
  if (a.dry) return 0;
  using namespace virtio::mmio_reg;
  uint64_t attacks = 0;
  const auto page = reinterpret_cast<uintptr_t>(&g_qp);
  const auto desc = reinterpret_cast<uintptr_t>(g_qp.desc), avail = reinterpret_cast<uintptr_t>(g_qp.avail),
             used = reinterpret_cast<uintptr_t>(g_qp.used), buf = reinterpret_cast<uintptr_t>(g_qp.buf);
  (void)page;
  for (unsigned w = 0; w < a.boot->virtio_count; w++) {
    MmioDevice d(a.boot->virtio[w].start);
    for (unsigned attack = 0; attack < 8; attack++) {
      // A fresh handshake with every offered feature, then a queue the device must not trust.
      const uint64_t offered = d.reset_and_read_features();
      d.write(kDriverFeaturesSel, 0), d.write(kDriverFeatures, uint32_t(offered));
      d.write(kDriverFeaturesSel, 1), d.write(kDriverFeatures, uint32_t(offered >> 32));
      d.write(kStatus, virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
      for (auto& e : g_qp.desc) e = {buf, sizeof g_qp.buf, 0, 0};
      for (auto& b : g_qp.buf) b = static_cast<uint32_t>(rnd());
      g_qp.avail[0] = 0;
      g_qp.avail[1] = 1;
      g_qp.avail[2] = 0;
      uint64_t qdesc = desc, qavail = avail, qused = used;
      uint32_t num = 16;
      switch (attack) {
        case 0: g_qp.desc[0] = {buf, 4, virtio::kDescFlagNext, 0}; break;               // a chain that loops
        case 1: g_qp.desc[0] = {0x7f00'0000'0000ull, 4096, 0, 0}; break;                // a buffer outside RAM
        case 2: g_qp.desc[0] = {buf, 0xffffffffu, 0, 0}; break;                         // an absurd length
        case 3: g_qp.avail[1] = 0xffff; g_qp.avail[2] = 0xffff; break;                  // indices beyond the ring
        case 4: qdesc = 0x7f00'0000'0000ull; break;                                     // rings outside RAM
        case 5: qused = 0xfffff000ull; qavail = a.boot->ram_bytes - 2; break;           // rings across RAM's end
        case 6: num = 0x7fff; break;                                                    // a size the rings do not hold
        case 7: g_qp.desc[0] = {desc, 16 * 16, virtio::kDescFlagIndirect, 0}; break;   // indirect to itself
      }
      for (unsigned q = 0; q < 4; q++) set_queue(d, q, qdesc, qavail, qused, num);
      d.write(kStatus, virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk |
                           virtio::kStatusDriverOk);
      for (unsigned q = 0; q < 6; q++) d.write(kQueueNotify, q);
      attacks++;
    }
    d.write(kStatus, 0);
  }
  kprintf("hostile-virtq: %lu malicious queue set-ups notified, still running\n", attacks);
  return 0;
}

uint32_t step_installs(const StepArgs& a) {
  uint64_t count;
  if (a.argc != 2 || !parse_uint(a.argv[1], count) || count == 0) return step_usage(a, "hostile-installs <count>");
  if (a.dry) return 0;
  if (a.boot->hyperalloc_port < 0) {
    kprintf("hostile-installs: no hyperalloc device\n");
    return kExitStepFailed;
  }
  const auto port = static_cast<uint16_t>(a.boot->hyperalloc_port);
  const uint64_t huge_frames = mem_huge_frames();
  for (uint64_t i = 0; i < count; i++) {
    uint32_t frame;
    switch (i % 4) {
      case 0: frame = static_cast<uint32_t>(huge_frames + rnd() % 1000000); break;  // beyond the zone
      case 1: frame = static_cast<uint32_t>(rnd()); break;                          // anything
      case 2: frame = 0; break;                                                     // the kernel's, never reclaimed
      default: frame = static_cast<uint32_t>(rnd() % huge_frames); break;           // in use or not reclaimed
    }
    outl(port, frame);
  }
  kprintf("hostile-installs: %lu install requests sent, still running\n", count);
  return 0;
}

HypercallRequest g_req;

uint32_t step_hypercalls(const StepArgs& a) {
  uint64_t count;
  if (a.argc != 2 || !parse_uint(a.argv[1], count) || count == 0) return step_usage(a, "hostile-hypercalls <count>");
  if (a.dry) return 0;
  for (uint64_t i = 0; i < count; i++) {
    if (i % 8 == 7) {  // a request the host cannot read
      outl(kPortHypercall, kBadGpa[rnd() % (sizeof kBadGpa / sizeof kBadGpa[0])] + uint32_t(rnd() % 3));
      continue;
    }
    uint32_t nr = static_cast<uint32_t>(rnd());
    // Numbers that block the vCPU (sleep, wait, barrier) or stop the VM (panic) work as designed
    // with any argument; everything else, valid or not, must be refused or served harmlessly.
    const uint32_t harmless[] = {uint32_t(Hypercall::kConsoleWrite), uint32_t(Hypercall::kWake),
                                 uint32_t(Hypercall::kHyperallocRegister), uint32_t(Hypercall::kNow),
                                 uint32_t(Hypercall::kVirtioMemFree), 0, kHypercallMax + 1};
    if (i % 2) nr = harmless[rnd() % (sizeof harmless / sizeof harmless[0])];
    g_req.nr = nr;
    g_req.reserved = static_cast<uint32_t>(rnd());
    for (auto& arg : g_req.args) arg = rnd();
    if (nr == uint32_t(Hypercall::kConsoleWrite)) g_req.args[1] &= 0xff;  // a screenful of memory at most
    g_req.ret = 0;
    outl(kPortHypercall, static_cast<uint32_t>(reinterpret_cast<uintptr_t>(&g_req)));
  }
  kprintf("\nhostile-hypercalls: %lu hypercalls sent, still running\n", count);
  return 0;
}

uint32_t step_words(const StepArgs& a) {
  uint64_t ns;
  if (a.argc != 2 || !parse_duration_ns(a.argv[1], ns)) return step_usage(a, "hostile-words <duration>");
  if (a.dry) return 0;
  const auto r = mem_registration();
  auto* children = reinterpret_cast<volatile uint16_t*>(r.children_gpa);
  auto* trees = reinterpret_cast<volatile uint16_t*>(r.trees_gpa);
  const uint64_t nchildren = r.children_len / 2, ntrees = r.trees_len / 2;
  const uint64_t end = deadline_after(a, ns);
  uint64_t writes = 0;
  while (rdtsc() < end) {
    for (int i = 0; i < 1000; i++, writes++) {
      const uint64_t x = rnd();
      if (x & 1) children[(x >> 8) % nchildren] = static_cast<uint16_t>(x >> 40);
      else trees[(x >> 8) % ntrees] = static_cast<uint16_t>(x >> 40);
    }
  }
  kprintf("hostile-words: %lu random writes to the shared allocator words, still running\n", writes);
  return 0;
}

uint32_t step_balloon_actual(const StepArgs& a) {
  uint64_t ns;
  if (a.argc != 2 || !parse_duration_ns(a.argv[1], ns)) return step_usage(a, "hostile-balloon-actual <duration>");
  if (a.dry) return 0;
  for (unsigned i = 0; i < a.boot->virtio_count; i++) {
    MmioDevice d(a.boot->virtio[i].start);
    if (d.read(virtio::mmio_reg::kDeviceId) != virtio::balloon::kDeviceId) continue;
    const uint64_t end = deadline_after(a, ns);
    uint64_t writes = 0;
    while (rdtsc() < end) {
      const uint32_t target = d.read(virtio::mmio_reg::kConfig + virtio::balloon::kConfigNumPages);
      d.write(virtio::mmio_reg::kConfig + virtio::balloon::kConfigActual, target);
      writes++;
      sleep_ns(1'000'000);
    }
    kprintf("hostile-balloon-actual: wrote the target as `actual` %lu times\n", writes);
    return 0;
  }
  kprintf("hostile-balloon-actual: no balloon device\n");
  return kExitStepFailed;
}

constexpr StepDef kHostile[] = {
    {"hostile-ports", "hostile-ports", step_ports},
    {"hostile-mmio", "hostile-mmio", step_mmio},
    {"hostile-virtq", "hostile-virtq", step_virtq},
    {"hostile-installs", "hostile-installs <count>", step_installs},
    {"hostile-hypercalls", "hostile-hypercalls <count>", step_hypercalls},
    {"hostile-words", "hostile-words <duration>", step_words},
    {"hostile-balloon-actual", "hostile-balloon-actual <duration>", step_balloon_actual},
};

}  // namespace

extern const StepTable kHostileSteps = step_table(kHostile, /*hidden=*/true);

}  // namespace guest
