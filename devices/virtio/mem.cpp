#include "devices/virtio/mem.hpp"

#include <algorithm>
#include <bit>
#include <limits>
#include <optional>
#include <stdexcept>

namespace hvmm::virtio {

namespace {
constexpr uint64_t kWordBits = 64;

// Bits [lo, hi) of a 64-bit word set (0 <= lo < hi <= 64).
uint64_t word_mask(uint64_t lo, uint64_t hi) {
  uint64_t upper = hi == kWordBits ? ~uint64_t{0} : (uint64_t{1} << hi) - 1;
  return upper & ~((uint64_t{1} << lo) - 1);
}

// Calls f(word index, mask) for every bitmap word that blocks [first, first+count) touch.
template <class F>
void for_each_word(uint64_t first, uint64_t count, F&& f) {
  uint64_t b = first, end = first + count;
  while (b < end) {
    uint64_t w = b / kWordBits, lo = b % kWordBits;
    uint64_t hi = std::min<uint64_t>(kWordBits, lo + (end - b));
    f(w, word_mask(lo, hi));
    b += hi - lo;
  }
}
}  // namespace

VirtioMem::VirtioMem(const GuestMemory& mem, MemBackend& backend, Options opt)
    : mem_(mem), backend_(backend), opt_(opt) {
  const uint64_t bs = opt.block_size;
  if (!std::has_single_bit(bs) || bs < kMinBlockSize)
    throw std::invalid_argument("virtio-mem: block size must be a power of two >= 4 KiB");
  if (opt.region_size == 0 || opt.region_size % bs || opt.region_addr % bs)
    throw std::invalid_argument("virtio-mem: region must be non-empty and block-aligned");
  if (opt.region_size > std::numeric_limits<uint64_t>::max() - opt.region_addr)
    throw std::invalid_argument("virtio-mem: region wraps around the address space");
  if (opt.usable_region_size == 0) opt_.usable_region_size = opt.region_size;
  if (opt_.usable_region_size % bs || opt_.usable_region_size > opt.region_size)
    throw std::invalid_argument("virtio-mem: usable size must be block-aligned and inside the region");
  if (opt.region_size / bs > kMaxBlocks) throw std::invalid_argument("virtio-mem: too many blocks");
  if (!std::has_single_bit(opt.queue_size) || opt.queue_size > kMaxQueueSize)
    throw std::invalid_argument("virtio-mem: queue size must be a power of two");
  nblocks_ = opt.region_size / bs;
  usable_blocks_ = opt_.usable_region_size / bs;
  // Value-initialised: every block starts unplugged.
  bitmap_ = std::make_unique<std::atomic<uint64_t>[]>((nblocks_ + kWordBits - 1) / kWordBits);
}

// ---- bitmap ----

uint64_t VirtioMem::find(uint64_t from, bool want_plugged) const {
  while (from < nblocks_) {
    uint64_t w = from / kWordBits;
    uint64_t bits = bitmap_[w].load(std::memory_order_relaxed);
    if (!want_plugged) bits = ~bits;  // bits past nblocks_ turn to 1 here: clamped below
    bits &= ~((uint64_t{1} << (from % kWordBits)) - 1);
    if (bits) return std::min<uint64_t>(nblocks_, w * kWordBits + std::countr_zero(bits));
    from = (w + 1) * kWordBits;
  }
  return nblocks_;
}

void VirtioMem::assign(Blocks b, bool plug) {
  for_each_word(b.first, b.count, [&](uint64_t w, uint64_t mask) {
    uint64_t before = bitmap_[w].load(std::memory_order_relaxed);
    uint64_t after = plug ? before | mask : before & ~mask;
    // Release: plugged() readers that see a block plugged also see what the backend did first.
    bitmap_[w].store(after, std::memory_order_release);
    plugged_blocks_ = plugged_blocks_ + std::popcount(after) - std::popcount(before);
  });
}

uint64_t VirtioMem::count_plugged(Blocks b) const {
  uint64_t n = 0;
  for_each_word(b.first, b.count, [&](uint64_t w, uint64_t mask) {
    n += std::popcount(bitmap_[w].load(std::memory_order_relaxed) & mask);
  });
  return n;
}

VirtioMem::RangeState VirtioMem::range_state(Blocks b) const {
  uint64_t n = count_plugged(b);
  return n == 0 ? RangeState::unplugged : n == b.count ? RangeState::plugged : RangeState::mixed;
}

bool VirtioMem::plugged(uint64_t gpa) const {
  if (gpa < opt_.region_addr || gpa - opt_.region_addr >= opt_.region_size) return false;
  uint64_t block = (gpa - opt_.region_addr) / opt_.block_size;
  return (bitmap_[block / kWordBits].load(std::memory_order_acquire) >> (block % kWordBits)) & 1;
}

// ---- requests ----

bool VirtioMem::valid_range(uint64_t addr, uint64_t nb_blocks, Blocks& out) const {
  // Counted in blocks, never in bytes: addr + nb_blocks * block_size cannot overflow here.
  if (nb_blocks == 0 || addr % opt_.block_size || addr < opt_.region_addr) return false;
  uint64_t first = (addr - opt_.region_addr) / opt_.block_size;
  if (first >= usable_blocks_ || nb_blocks > usable_blocks_ - first) return false;
  out = {first, nb_blocks};
  return true;
}

mem::Response VirtioMem::respond(uint16_t type, uint16_t block_state) {
  switch (type) {
    case mem::kRespAck: ++counters_.acks; break;
    case mem::kRespNack: ++counters_.nacks; break;
    case mem::kRespBusy: ++counters_.busy; break;
    default: ++counters_.errors; break;
  }
  return {type, {0, 0, 0}, block_state};
}

mem::Response VirtioMem::handle(const mem::Request& req) {
  // Only type, addr and nb_blocks count; padding is ignored (§5.15.6.3.2).
  switch (req.type) {
    case mem::kReqPlug:
      ++counters_.plug_requests;
      return change_state(req, true);
    case mem::kReqUnplug:
      ++counters_.unplug_requests;
      return change_state(req, false);
    case mem::kReqUnplugAll:
      ++counters_.unplug_all_requests;
      return unplug_everything();
    case mem::kReqState:
      ++counters_.state_requests;
      return state(req);
    default:
      ++counters_.invalid_requests;
      return respond(mem::kRespError);
  }
}

mem::Response VirtioMem::change_state(const mem::Request& req, bool plug) {
  // The spec's MUSTs first (ERROR for a bad range or a block already in the target state), then
  // the policy answers (BUSY, NACK): an invalid request never looks like a refused valid one.
  Blocks b;
  if (!valid_range(req.addr, req.nb_blocks, b)) {
    ++counters_.invalid_requests;
    return respond(mem::kRespError);
  }
  if (range_state(b) != (plug ? RangeState::unplugged : RangeState::plugged)) {
    ++counters_.state_conflicts;
    return respond(mem::kRespError);
  }
  if (busy_) return respond(mem::kRespBusy);
  const uint64_t len = b.count * opt_.block_size;  // <= usable_region_size (valid_range)
  if (plug) {
    uint64_t plugged = plugged_blocks_ * opt_.block_size;
    uint64_t room = requested_ > plugged ? requested_ - plugged : 0;
    if (len > room) return respond(mem::kRespNack);
  }
  const uint64_t gpa = gpa_of(b.first);
  if (!(plug ? backend_.plug(gpa, len) : backend_.unplug(gpa, len))) {
    ++counters_.backend_failures;
    return respond(mem::kRespError);
  }
  assign(b, plug);
  return respond(mem::kRespAck);
}

mem::Response VirtioMem::state(const mem::Request& req) {
  Blocks b;
  if (!valid_range(req.addr, req.nb_blocks, b)) {
    ++counters_.invalid_requests;
    return respond(mem::kRespError);
  }
  switch (range_state(b)) {
    case RangeState::plugged: return respond(mem::kRespAck, mem::kStatePlugged);
    case RangeState::unplugged: return respond(mem::kRespAck, mem::kStateUnplugged);
    case RangeState::mixed: break;
  }
  return respond(mem::kRespAck, mem::kStateMixed);
}

mem::Response VirtioMem::unplug_everything() {
  if (busy_) return respond(mem::kRespBusy);
  return respond(unplug_all_locked() ? mem::kRespAck : mem::kRespError);
}

bool VirtioMem::unplug_all_locked() {
  // One backend call per maximal run of plugged blocks: the backend only ever sees plugged memory.
  // Work: one pass over the bitmap (nblocks_ / 64 words) plus one call per run.
  for (uint64_t b = find(0, true); b < nblocks_;) {
    uint64_t end = find(b, false);
    if (!backend_.unplug(gpa_of(b), (end - b) * opt_.block_size)) {
      ++counters_.backend_failures;
      return false;
    }
    assign({b, end - b}, false);
    b = find(end, true);
  }
  return true;
}

// ---- chains ----

std::optional<VirtioMem::Blocks> VirtioMem::blocks_of(const DescBuf& d) const {
  const uint64_t base = opt_.region_addr, end = base + opt_.region_size;
  uint64_t lo = std::max(d.gpa, base), hi = std::min(d.gpa + d.len, end);  // in RAM: no overflow
  if (lo >= hi) return std::nullopt;
  uint64_t first = (lo - base) / opt_.block_size;
  return Blocks{first, (hi - 1 - base) / opt_.block_size - first + 1};
}

bool VirtioMem::buffers_usable(const DescChain& chain) const {
  // A buffer in an unplugged block of our own region may be inaccessible to the host too (the
  // backend may have made it so): refuse it rather than touch it.
  auto ok = [&](const DescBuf& d) {
    auto b = blocks_of(d);
    return !b || count_plugged(*b) == b->count;
  };
  return std::all_of(chain.readable.begin(), chain.readable.end(), ok) &&
         std::all_of(chain.writable.begin(), chain.writable.end(), ok);
}

bool VirtioMem::unplugs_response(const mem::Request& req, const DescChain& chain) const {
  // The driver MUST NOT unplug memory in use (§5.15.6.1), e.g. its own response buffer: after the
  // unplug the response could no longer be written. Refused before anything changes.
  Blocks victim{0, nblocks_};
  if (req.type == mem::kReqUnplug) {
    if (!valid_range(req.addr, req.nb_blocks, victim)) return false;  // ERROR, nothing unplugged
  } else if (req.type != mem::kReqUnplugAll) {
    return false;
  }
  return std::any_of(chain.writable.begin(), chain.writable.end(), [&](const DescBuf& d) {
    auto b = blocks_of(d);
    return b && b->first < victim.first + victim.count && victim.first < b->first + b->count;
  });
}

uint32_t VirtioMem::handle_chain(const DescChain& chain) {
  mem::Request req;
  if (chain.readable_bytes() < sizeof req || chain.writable_bytes() < sizeof(mem::Response) ||
      !buffers_usable(chain) || ChainReader(mem_, chain).read(&req, sizeof req) != sizeof req ||
      unplugs_response(req, chain)) {
    ++counters_.bad_buffers;
    return 0;
  }
  const mem::Response resp = handle(req);
  // The response may be split over several writable buffers, like any virtio payload.
  const auto* src = reinterpret_cast<const uint8_t*>(&resp);
  uint64_t done = 0;
  for (const DescBuf& d : chain.writable) {
    if (done == sizeof resp) break;
    uint64_t n = std::min<uint64_t>(d.len, sizeof resp - done);
    if (!mem_.write(d.gpa, src + done, n)) break;  // validated by the queue; only a logic error
    done += n;
  }
  return uint32_t(done);
}

void VirtioMem::queue_notify(unsigned index) {
  if (!transport_ || index != 0) return;
  Virtqueue* q = transport_->queue(0);
  if (!q) return;
  bool pushed = false;
  for (uint32_t n = 0;; ++n) {
    if (n == max_requests_per_notify()) {
      ++counters_.notify_bound_hits;
      break;
    }
    auto r = q->pop(chain_);
    if (r == Virtqueue::Pop::error) ++counters_.bad_chains;
    if (r != Virtqueue::Pop::chain) break;
    q->push(chain_.head, handle_chain(chain_));
    pushed = true;
  }
  if (pushed) transport_->notify_used(0);
}

// ---- transport-facing ----

bool VirtioMem::accept_features(uint64_t features) {
  // Unplugged memory may be inaccessible (the backend decides): a driver that would read it is
  // refused at FEATURES_OK rather than faulted later.
  if (!(features & mem::kFeatureUnpluggedInaccessible)) return false;
  accepted_ = features;
  return true;
}

void VirtioMem::read_config(uint32_t offset, uint8_t* data, unsigned len) {
  mem::Config c{};
  c.block_size = opt_.block_size;
  c.addr = opt_.region_addr;
  c.region_size = opt_.region_size;
  c.usable_region_size = opt_.usable_region_size;
  c.plugged_size = plugged_blocks_ * opt_.block_size;
  c.requested_size = requested_;
  for (unsigned i = 0; i < len; ++i) {
    uint64_t o = uint64_t(offset) + i;
    data[i] = o < sizeof c ? reinterpret_cast<const uint8_t*>(&c)[o] : 0;
  }
}

void VirtioMem::write_config(uint32_t, const uint8_t*, unsigned) {
  ++counters_.config_writes;  // all fields are read-only for the driver (§5.15.4.1)
}

void VirtioMem::reset() {
  // Block states survive a device reset (§5.15.5.2); so do the host's requested size and busy flag.
  accepted_ = 0;
}

// ---- host-facing ----

uint64_t VirtioMem::set_requested_size(uint64_t bytes) {
  std::lock_guard g(mu_);
  uint64_t v = std::min(bytes, opt_.usable_region_size) & ~(opt_.block_size - 1);
  if (v != requested_) {
    requested_ = v;
    if (transport_) transport_->config_changed();
  }
  return requested_;
}

void VirtioMem::set_busy(bool busy) {
  std::lock_guard g(mu_);
  busy_ = busy;
}

bool VirtioMem::unplug_all() {
  std::lock_guard g(mu_);
  return unplug_all_locked();
}

VirtioMemStatus VirtioMem::status() {
  std::lock_guard g(mu_);
  return {opt_.block_size,   opt_.region_addr, opt_.region_size, opt_.usable_region_size,
          plugged_blocks_ * opt_.block_size, requested_, accepted_, busy_, counters_};
}

}  // namespace hvmm::virtio
