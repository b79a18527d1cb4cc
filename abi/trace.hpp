// The replay trace: a recorded workload's memory demand over time (processes, page cache, phases),
// written by bench/compiling/trace_convert.py, loaded by `hvmm run --trace FILE` into guest memory as
// an initrd (abi/layout.hpp, initrd_region) and replayed by the guest's `replay` step
// (guest/replay.cpp). Format: bench/compiling/TRACE_FORMAT.md. All little-endian, unscaled: the
// memory and time scale factors are the replay step's parameters.
//
// Everything in it is untrusted for the guest (a user hands any file to --trace): the guest checks
// the header, the sizes, every event's kind, slot, order and time before it replays anything.
#pragma once
#include <cstddef>
#include <cstdint>

namespace hvmm::abi::trace {

inline constexpr char kMagic[8] = {'H', 'V', 'M', 'M', 'T', 'R', 'C', '1'};
inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kMaxSlots = 1024;        // processes alive at once
inline constexpr uint32_t kMaxEvents = 1u << 22;   // 64 MiB of events
inline constexpr uint64_t kMaxFileBytes = 64ull << 20;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;  // sizeof(Header)
  uint32_t event_bytes;   // sizeof(Event)
  uint32_t event_count;
  uint32_t slots;         // process slots used (each START's slot < slots)
  uint32_t duration_ms;   // time of the last event (the `end` phase)
  uint64_t peak_kib;      // peak of processes + page cache, unscaled (informational)
  uint64_t reserved[4];
};
static_assert(sizeof(Header) == 72);
static_assert(offsetof(Header, event_count) == 20 && offsetof(Header, peak_kib) == 32);

enum class Kind : uint16_t {
  kProcStart = 1,  // slot starts a process of `kib` KiB (allocated and touched at once)
  kProcEnd = 2,    // slot's process ends (its memory is freed)
  kCache = 3,      // page-cache level becomes `kib` KiB
  kPhase = 4,      // phase `arg` begins (Phase below)
};

enum class Phase : uint16_t { kBuild = 0, kDelay = 1, kClean = 2, kIdle = 3, kDropCaches = 4, kEnd = 5 };
inline constexpr uint16_t kPhaseCount = 6;
inline constexpr const char* kPhaseNames[kPhaseCount] = {"build", "delay", "clean", "idle", "drop_caches", "end"};

struct Event {
  uint32_t t_ms;  // since the start of the trace, non-decreasing
  uint16_t kind;  // Kind
  uint16_t arg;   // Phase for kPhase, else 0
  uint32_t slot;  // kProcStart / kProcEnd
  uint32_t kib;   // kProcStart: size; kCache: level
};
static_assert(sizeof(Event) == 16);

}  // namespace hvmm::abi::trace
