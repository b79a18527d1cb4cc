#include "guest/replay_trace.hpp"

#include <cstring>

#include "guest/console.hpp"

namespace guest {
namespace {
namespace tr = hvmm::abi::trace;

bool inside(const MemRange& outer, uint64_t start, uint64_t size) {
  return start >= outer.start && size <= outer.size && start - outer.start <= outer.size - size;
}

uint64_t g_live[tr::kMaxSlots / 64];

// One line naming the first bad event (the step's error is the static `why`).
bool bad_event(uint32_t i, const char* what, const char*& why) {
  kprintf("replay: trace event %u: %s\n", i, what);
  why = "malformed trace (bad event)";
  return false;
}
}  // namespace

bool trace_open(const BootInfo& boot, TraceView& out, const char*& why) {
  const MemRange rd = boot.initrd;
  if (!rd.size) return why = "no trace: start hvmm with --trace FILE", false;
  bool reserved = false, ram = false;
  for (unsigned i = 0; i < boot.reserved_count; i++) reserved |= inside(boot.reserved[i], rd.start, rd.size);
  for (unsigned i = 0; i < boot.ram_count; i++) ram |= inside(boot.ram[i], rd.start, rd.size);
  if (!reserved || !ram) return why = "the initrd is not in reserved RAM", false;
  if (rd.size < sizeof(tr::Header)) return why = "trace shorter than its header", false;
  const auto* h = reinterpret_cast<const tr::Header*>(rd.start);
  if (memcmp(h->magic, tr::kMagic, sizeof h->magic) != 0) return why = "not an hvmm trace (bad magic)", false;
  if (h->version != tr::kVersion || h->header_bytes != sizeof(tr::Header) || h->event_bytes != sizeof(tr::Event))
    return why = "unsupported trace version or record sizes", false;
  if (h->event_count == 0 || h->event_count > tr::kMaxEvents ||
      uint64_t{h->event_count} * sizeof(tr::Event) > rd.size - sizeof(tr::Header))
    return why = "event count does not fit the initrd", false;
  if (h->slots == 0 || h->slots > tr::kMaxSlots) return why = "slot count out of range", false;

  const auto* ev = reinterpret_cast<const tr::Event*>(rd.start + sizeof(tr::Header));
  memset(g_live, 0, sizeof g_live);
  uint32_t last_t = 0;
  uint16_t next_phase = 0;
  for (uint32_t i = 0; i < h->event_count; i++) {
    const tr::Event& e = ev[i];
    if (e.t_ms < last_t) return bad_event(i, "time goes backwards", why);
    last_t = e.t_ms;
    if (next_phase == tr::kPhaseCount) return bad_event(i, "event after the end phase", why);
    if (next_phase == 0 && e.kind != uint16_t(tr::Kind::kPhase)) return bad_event(i, "event before the build phase", why);
    const bool slotted = e.kind == uint16_t(tr::Kind::kProcStart) || e.kind == uint16_t(tr::Kind::kProcEnd);
    if (slotted && e.slot >= h->slots) return bad_event(i, "slot out of range", why);
    uint64_t& word = g_live[slotted ? e.slot / 64 : 0];
    const uint64_t bit = uint64_t{1} << (e.slot % 64);
    switch (e.kind) {
      case uint16_t(tr::Kind::kProcStart):
        if (word & bit) return bad_event(i, "process start in a busy slot", why);
        if (e.kib == 0) return bad_event(i, "empty process", why);
        word |= bit;
        break;
      case uint16_t(tr::Kind::kProcEnd):
        if (!(word & bit)) return bad_event(i, "process end in a free slot", why);
        word &= ~bit;
        break;
      case uint16_t(tr::Kind::kCache):
        break;
      case uint16_t(tr::Kind::kPhase):
        if (e.arg != next_phase) return bad_event(i, "phase out of order", why);
        next_phase++;
        break;
      default:
        return bad_event(i, "unknown kind", why);
    }
  }
  if (next_phase != tr::kPhaseCount) return why = "trace does not reach its end phase", false;
  for (uint64_t w : g_live)
    if (w) return why = "a process is still alive at the end", false;
  out = {h, ev, h->event_count, h->slots};
  return true;
}

}  // namespace guest
