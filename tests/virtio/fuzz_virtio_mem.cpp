// libFuzzer target: virtio-mem driven through the mmio transport by an arbitrary sequence of guest
// requests (well-formed or not), hostile ring writes, resets, and host-side resizes.
//
// Checked after every step:
//   - the device's bitmap is exactly what the backend was told (a shadow kept by the backend);
//   - plugged_size == popcount(bitmap) * block_size <= usable_region_size, also as read through
//     config space; no block beyond the usable region is ever plugged;
//   - the backend only sees block-aligned ranges inside the usable region, wholly in the opposite
//     state; an acknowledged PLUG never takes plugged_size past requested_size;
//   - every well-formed request gets the response a small reference model predicts; a request
//     without room for request/response, with a buffer in an unplugged block, or unplugging its
//     own response buffer gets 0 bytes and changes nothing.
// Unplugged blocks of the device region are ASan-poisoned, so the device reading or writing one
// (e.g. a request buffer placed there) is reported; so is anything outside guest RAM.
//
// The driver does not negotiate INDIRECT_DESC: the virtqueue walker reads indirect tables without
// knowing about virtio-mem block states, which is the queue's business (tests/virtio/fuzz_virtqueue).
//
// Input: byte 0 = set-up flags (bit 0 event index, bit 1 refuse UNPLUGGED_INACCESSIBLE), then up
// to kMaxOps operations, each an op byte (op % 8) followed by its arguments (missing bytes are 0):
//   0 REQUEST  type:u8 mode:u8 shape:u8 extra:u8 nb_blocks:u16 arg:u64
//        type: bit 7 set -> unknown type 0x100|type, else type % 5 (4 is unknown too)
//        mode: bits 0-1 address (0 region + (arg % (blocks+8)) * block, 1 arg, 2 region + arg %
//              ((blocks+8) * block), 3 ~0 - arg % 65536), bit 2 raw nb_blocks (else % 8),
//              bit 3 backend fails, bits 4-5 request layout (0 one buffer, 1 split, 2 none,
//              3 device-writable), bits 6-7 response layout (0 one, 1 split, 2 short, 3 none)
//        shape: bits 0-3 split point / shortfall, bit 4 request in device block `extra`,
//              bit 5 response in device block `extra`, bit 6 8 extra request bytes,
//              bit 7 request short by 1 + (shape & 3) bytes
//   1 RESIZE   bytes:u64        set_requested_size
//   2 BUSY     on:u8            set_busy(on & 1)
//   3 RESET    flags:u8         driver writes status 0 and starts again (flags as byte 0)
//   4 RAW      first:u8 n:u8 (1 + n % 4) x 16-byte descriptors, head:u16   hostile ring
//   5 UNPLUGALL fail:u8         host-side unplug_all()
//   6 AVAIL    idx:u16          raw avail index
//   7 CONFIG   off:u8 sel:u8    config access of 1 << (sel % 4) bytes; bit 2 makes it a write
#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "devices/virtio/mem.hpp"
#include "devices/virtio/mmio.hpp"
#include "tests/virtio/fake_driver.hpp"

using namespace hvmm;
using namespace hvmm::virtio;
using namespace hvmm::virtio::test;

#define FUZZ_CHECK(c)                                                         \
  do {                                                                        \
    if (!(c)) {                                                               \
      std::fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__); \
      std::abort();                                                           \
    }                                                                         \
  } while (0)

namespace {
constexpr uint64_t kRamSize = 0x10000;       // [0, 64 KiB): rings and buffers
constexpr uint64_t kRegion = 0x100000;       // the device region is guest RAM too
constexpr uint64_t kBlock = 4096;
constexpr uint64_t kBlocks = 96;             // two bitmap words
constexpr uint64_t kUsableBlocks = 80;
constexpr uint16_t kQueueSize = 8;
constexpr uint64_t kReq = 0x1000, kReq2 = 0x1100, kResp = 0x1200, kResp2 = 0x1300;
constexpr unsigned kMaxOps = 64;
GuestMemory::RegionSpec kRegions[] = {{0, kRamSize}, {kRegion, kBlocks * kBlock}};

GuestMemory& memory() {
  static GuestMemory mem(kRegions);
  return mem;
}

uint8_t* region_hva(uint64_t gpa) { return memory().hva(gpa, 1); }

struct Input {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t u8() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  uint16_t u16() { return uint16_t(u8() | u8() << 8); }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(u8()) << (8 * i);
    return v;
  }
};

// Keeps its own copy of the block states and poisons unplugged blocks.
struct ShadowBackend : MemBackend {
  std::array<bool, kBlocks> plugged{};
  bool fail = false;
  uint64_t calls = 0;
  bool plugs_done = false;  // a plug succeeded during the current step

  std::pair<uint64_t, uint64_t> blocks(uint64_t gpa, uint64_t len) {
    FUZZ_CHECK(gpa % kBlock == 0 && len % kBlock == 0 && len > 0);
    FUZZ_CHECK(gpa >= kRegion && (gpa - kRegion) / kBlock + len / kBlock <= kUsableBlocks);
    return {(gpa - kRegion) / kBlock, len / kBlock};
  }
  bool change(uint64_t gpa, uint64_t len, bool plug) {
    ++calls;
    auto [first, n] = blocks(gpa, len);
    for (uint64_t b = first; b < first + n; ++b) FUZZ_CHECK(plugged[b] != plug);
    if (fail) return false;
    for (uint64_t b = first; b < first + n; ++b) plugged[b] = plug;
    if (plug) {
      ASAN_UNPOISON_MEMORY_REGION(region_hva(gpa), len);
      plugs_done = true;
    } else {
      std::memset(region_hva(gpa), 0xdd, len);  // what the guest left there is gone
      ASAN_POISON_MEMORY_REGION(region_hva(gpa), len);
    }
    return true;
  }
  bool plug(uint64_t gpa, uint64_t len) override { return change(gpa, len, true); }
  bool unplug(uint64_t gpa, uint64_t len) override { return change(gpa, len, false); }

  uint64_t count() const { return uint64_t(std::count(plugged.begin(), plugged.end(), true)); }
  // Would the device accept a buffer here (not in an unplugged block of its region)?
  bool usable(uint64_t gpa, uint64_t len) const {
    uint64_t lo = std::max(gpa, kRegion), hi = std::min(gpa + len, kRegion + kBlocks * kBlock);
    for (uint64_t a = lo; a < hi; a += kBlock - (a - kRegion) % kBlock)
      if (!plugged[(a - kRegion) / kBlock]) return false;
    return true;
  }
};

struct Expect {
  uint16_t type;
  uint16_t state;
};

struct Harness {
  GuestMemory& mem = memory();
  ShadowBackend backend;
  VirtioMem dev{mem, backend, {kRegion, kBlocks * kBlock, kBlock, kUsableBlocks * kBlock, kQueueSize}};
  FakeIrq irq;
  MmioTransport t{mem, dev, irq};
  MmioDriver drv{t};
  std::optional<FakeQueue> q;
  bool rings_dirty = false;  // hostile ring writes: the driver's view of the ring may be off

  void start(uint8_t flags) {
    drv.write(mmio_reg::kStatus, 0);
    q.emplace(mem, 0, kQueueSize);
    rings_dirty = false;
    uint64_t f = kFeatureVersion1 | (flags & 1 ? kFeatureEventIdx : 0) |
                 (flags & 2 ? 0 : mem::kFeatureUnpluggedInaccessible);
    if (drv.negotiate(f) && drv.setup_queue(0, *q)) drv.driver_ok();
  }
  bool live() {
    uint32_t s = drv.status();
    return (s & kStatusDriverOk) && !(s & kStatusNeedsReset);
  }

  static bool valid_range(uint64_t addr, uint64_t nb) {
    return nb > 0 && addr % kBlock == 0 && addr >= kRegion && (addr - kRegion) / kBlock < kUsableBlocks &&
           nb <= kUsableBlocks - (addr - kRegion) / kBlock;
  }

  // What the device must answer, from the shadow state before the request.
  Expect model(uint16_t type, uint64_t addr, uint64_t nb, bool fail) {
    VirtioMemStatus s = dev.status();
    bool valid = valid_range(addr, nb);
    uint64_t first = valid ? (addr - kRegion) / kBlock : 0, in_range = 0;
    for (uint64_t b = first; valid && b < first + nb; ++b) in_range += backend.plugged[b];
    switch (type) {
      case mem::kReqPlug:
      case mem::kReqUnplug: {
        bool plug = type == mem::kReqPlug;
        if (!valid || in_range != (plug ? 0 : nb)) return {mem::kRespError, 0};
        if (s.busy) return {mem::kRespBusy, 0};
        uint64_t room = s.requested_size > s.plugged_size ? s.requested_size - s.plugged_size : 0;
        if (plug && nb * kBlock > room) return {mem::kRespNack, 0};
        return {fail ? mem::kRespError : mem::kRespAck, 0};
      }
      case mem::kReqUnplugAll:
        if (s.busy) return {mem::kRespBusy, 0};
        return {fail && backend.count() ? mem::kRespError : mem::kRespAck, 0};
      case mem::kReqState:
        if (!valid) return {mem::kRespError, 0};
        if (in_range == nb) return {mem::kRespAck, mem::kStatePlugged};
        return {mem::kRespAck, in_range ? mem::kStateMixed : mem::kStateUnplugged};
      default: return {mem::kRespError, 0};
    }
  }

  // Writes guest memory only where the guest could (RAM, plugged blocks).
  void guest_write(uint64_t gpa, const void* src, uint64_t len) {
    if (backend.usable(gpa, len)) mem.write(gpa, src, len);
  }

  void request(Input& in) {
    uint8_t type = in.u8(), mode = in.u8(), shape = in.u8(), extra = in.u8();
    uint16_t nb = in.u16();
    uint64_t arg = in.u64();
    uint16_t rtype = type & 0x80 ? uint16_t(0x100 | type) : uint16_t(type % 5);
    uint64_t addr = 0;
    switch (mode & 3) {
      case 0: addr = kRegion + arg % (kBlocks + 8) * kBlock; break;
      case 1: addr = arg; break;
      case 2: addr = kRegion + arg % ((kBlocks + 8) * kBlock); break;
      default: addr = ~uint64_t{0} - arg % 65536; break;
    }
    if (!(mode & 4)) nb %= 8;
    const bool fail = mode & 8;
    const unsigned req_layout = (mode >> 4) & 3, resp_layout = mode >> 6;

    uint8_t raw[32];
    std::memset(raw, 0x77, sizeof raw);
    mem::Request req{};
    req.type = rtype;
    req.addr = addr;
    req.nb_blocks = nb;
    std::memcpy(raw, &req, sizeof req);
    uint32_t req_len = sizeof req + (shape & 0x40 ? 8 : 0) - (shape & 0x80 ? 1 + (shape & 3) : 0);
    uint64_t block_gpa = kRegion + extra % kBlocks * kBlock;
    uint64_t req_at = shape & 0x10 ? block_gpa + 64 : kReq, resp_at = shape & 0x20 ? block_gpa + 512 : kResp;

    // Descriptors: the request part(s), then the response part(s).
    struct Buf {
      uint64_t gpa;
      uint32_t len;
      bool writable;
    };
    std::vector<Buf> bufs;
    uint32_t split = 1 + (shape & 0xf) % (req_len - 1);
    switch (req_layout) {
      case 0: bufs.push_back({req_at, req_len, false}); break;
      case 1: bufs.push_back({req_at, split, false}), bufs.push_back({kReq2, req_len - split, false}); break;
      case 2: break;
      default: bufs.push_back({req_at, req_len, true}); break;
    }
    uint32_t resp_len = sizeof(mem::Response);
    switch (resp_layout) {
      case 0: bufs.push_back({resp_at, resp_len, true}); break;
      case 1: bufs.push_back({resp_at, 3, true}), bufs.push_back({kResp2, resp_len - 3, true}); break;
      case 2: bufs.push_back({resp_at, uint32_t(1 + (shape & 0xf) % (resp_len - 1)), true}); break;
      default: break;
    }
    if (bufs.empty()) return;
    if (req_layout == 1) {
      guest_write(req_at, raw, split);
      guest_write(kReq2, raw + split, req_len - split);
    } else {
      guest_write(req_at, raw, req_len);
    }
    uint8_t junk[16];
    std::memset(junk, 0xee, sizeof junk);
    guest_write(resp_at, junk, sizeof junk);
    guest_write(kResp2, junk, sizeof junk);
    for (size_t i = 0; i < bufs.size(); ++i) {
      uint16_t flags = uint16_t((bufs[i].writable ? kDescFlagWrite : 0) | (i + 1 < bufs.size() ? kDescFlagNext : 0));
      q->set_desc(uint16_t(i), bufs[i].gpa, bufs[i].len, flags, uint16_t(i + 1));
    }

    uint64_t readable = 0, writable = 0;
    bool usable = true;
    for (auto& b : bufs) {
      (b.writable ? writable : readable) += b.len;
      usable = usable && backend.usable(b.gpa, b.len);
    }
    // A request that would unplug its own response buffer is refused before it acts.
    uint64_t lo = kRegion, hi = kRegion + kBlocks * kBlock;
    if (rtype == mem::kReqUnplug) lo = addr, hi = valid_range(addr, nb) ? addr + nb * kBlock : addr;
    bool unplugs_own = false;
    if (rtype == mem::kReqUnplug || rtype == mem::kReqUnplugAll)
      for (auto& b : bufs) unplugs_own = unplugs_own || (b.writable && lo < hi && b.gpa < hi && lo < b.gpa + b.len);
    const bool well_formed = readable >= sizeof req && writable >= resp_len && usable && !unplugs_own;
    const bool was_live = live() && !rings_dirty;
    const Expect want = model(rtype, addr, nb, fail);
    const uint64_t calls = backend.calls;

    backend.fail = fail;
    uint16_t before = q->used_idx();
    q->publish(0);
    drv.notify(0);
    backend.fail = false;

    if (!was_live) return;
    FUZZ_CHECK(q->used_idx() == uint16_t(before + 1));
    uint32_t written = q->used_elem(before).len;
    if (!well_formed) {
      FUZZ_CHECK(written == 0);
      FUZZ_CHECK(backend.calls == calls);
      return;
    }
    FUZZ_CHECK(written == resp_len);
    uint8_t out[sizeof(mem::Response)];
    if (resp_layout == 1) {
      mem.read(resp_at, out, 3);
      mem.read(kResp2, out + 3, resp_len - 3);
    } else {
      mem.read(resp_at, out, resp_len);
    }
    mem::Response resp;
    std::memcpy(&resp, out, sizeof resp);
    FUZZ_CHECK(resp.type == want.type);
    if (want.type == mem::kRespAck && rtype == mem::kReqState) FUZZ_CHECK(resp.state == want.state);
    if (want.type != mem::kRespAck) FUZZ_CHECK(backend.calls == calls || fail);
  }

  void raw_ring(Input& in) {
    uint8_t first = in.u8();
    unsigned n = 1 + in.u8() % 4;
    for (unsigned i = 0; i < n; ++i) {
      VirtqDesc d;
      d.addr = in.u64();
      d.len = uint32_t(in.u16() | uint32_t(in.u16()) << 16);
      d.flags = in.u16();  // INDIRECT is not negotiated: a structural error
      d.next = in.u16();
      mem.write_obj(q->desc + 16ull * ((first + i) % kQueueSize), d);
    }
    q->publish(in.u16());
    drv.notify(0);
    rings_dirty = true;
  }

  void config(Input& in) {
    uint8_t off = in.u8(), sel = in.u8();
    unsigned len = 1u << (sel % 4);
    uint64_t v = 0;
    if (sel & 4) {
      uint64_t before = dev.status().counters.config_writes;
      t.mmio_write(mmio_reg::kConfig + off, reinterpret_cast<uint8_t*>(&v), len);
      FUZZ_CHECK(dev.status().counters.config_writes == before + (off % len == 0 ? 1 : 0));
      return;
    }
    t.mmio_read(mmio_reg::kConfig + off, reinterpret_cast<uint8_t*>(&v), len);
    if (off % len) return;  // refused by the transport
    VirtioMemStatus s = dev.status();
    mem::Config c{};
    c.block_size = kBlock;
    c.addr = kRegion;
    c.region_size = kBlocks * kBlock;
    c.usable_region_size = kUsableBlocks * kBlock;
    c.plugged_size = s.plugged_size;
    c.requested_size = s.requested_size;
    uint8_t want[8] = {};
    for (unsigned i = 0; i < len; ++i)
      if (off + i < sizeof c) want[i] = reinterpret_cast<const uint8_t*>(&c)[off + i];
    FUZZ_CHECK(std::memcmp(&v, want, len) == 0);
  }

  void check_invariants() {
    VirtioMemStatus s = dev.status();
    uint64_t n = 0;
    for (uint64_t b = 0; b < kBlocks; ++b) {
      bool p = dev.plugged(kRegion + b * kBlock + kBlock / 2);
      FUZZ_CHECK(p == backend.plugged[b]);
      FUZZ_CHECK(!p || b < kUsableBlocks);
      n += p;
    }
    FUZZ_CHECK(s.plugged_size == n * kBlock);
    FUZZ_CHECK(s.plugged_size <= s.usable_region_size);
    FUZZ_CHECK(s.requested_size <= s.usable_region_size && s.requested_size % kBlock == 0);
    if (backend.plugs_done) FUZZ_CHECK(s.plugged_size <= s.requested_size);
    FUZZ_CHECK(!dev.plugged(kRegion - 1) && !dev.plugged(kRegion + kBlocks * kBlock));
  }

  void step(Input& in) {
    backend.plugs_done = false;
    switch (in.u8() % 8) {
      case 0: request(in); break;
      case 1: {
        uint64_t v = in.u64();
        uint64_t got = dev.set_requested_size(v);
        FUZZ_CHECK(got == (std::min(v, kUsableBlocks * kBlock) & ~(kBlock - 1)));
        break;
      }
      case 2: dev.set_busy(in.u8() & 1); break;
      case 3: {
        uint64_t calls = backend.calls;
        start(in.u8());
        FUZZ_CHECK(backend.calls == calls);  // a device reset leaves the blocks alone
        break;
      }
      case 4: raw_ring(in); break;
      case 5: {
        backend.fail = in.u8() & 1;
        bool had = backend.count() > 0;
        bool ok = dev.unplug_all();
        FUZZ_CHECK(ok == (!backend.fail || !had));
        if (ok) FUZZ_CHECK(backend.count() == 0);
        backend.fail = false;
        break;
      }
      case 6:
        q->set_avail_idx(in.u16());
        drv.notify(0);
        rings_dirty = true;
        break;
      default: config(in); break;
    }
    check_invariants();
  }
};

void reset_memory() {
  for (auto& r : memory().regions()) {
    ASAN_UNPOISON_MEMORY_REGION(r.hva, r.size);
    std::memset(r.hva, 0, r.size);
  }
  // A new device has every block unplugged.
  ASAN_POISON_MEMORY_REGION(region_hva(kRegion), kBlocks * kBlock);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  reset_memory();
  {
    Input in{data, size};
    Harness h;
    h.start(in.u8());
    for (unsigned i = 0; i < kMaxOps && !in.empty(); ++i) h.step(in);
  }
  ASAN_UNPOISON_MEMORY_REGION(region_hva(kRegion), kBlocks * kBlock);
  return 0;
}
