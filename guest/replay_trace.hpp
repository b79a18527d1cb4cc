// The replay trace in the initrd (abi/trace.hpp), checked before use: the file comes from whoever ran
// `hvmm run --trace`, so nothing in it is trusted (sizes, counts, kinds, slots, times, phase order).
#pragma once
#include <cstdint>

#include "abi/trace.hpp"
#include "guest/boot_info.hpp"

namespace guest {

struct TraceView {
  const hvmm::abi::trace::Header* header = nullptr;
  const hvmm::abi::trace::Event* events = nullptr;
  uint32_t count = 0;
  uint32_t slots = 0;
};

// Finds the initrd (it must lie in a reserved range of RAM) and validates all of it. False with `why`
// (a static string) when there is no trace or it is malformed.
bool trace_open(const BootInfo& boot, TraceView& out, const char*& why);

}  // namespace guest
