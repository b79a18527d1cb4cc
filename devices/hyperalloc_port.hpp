// The HyperAlloc install port (abi/ports.hpp, kPortHyperallocInstall): the guest asks for a
// reclaimed 2 MiB frame back with a 32-bit write of its huge-frame index, served synchronously in
// the writing vCPU thread. A thin adapter: the work is the handler's (reclaim/hyperalloc_host.hpp,
// wired in vmm/mechanisms/hyperalloc.cpp). ARCHITECTURE.md, "One frame's life".
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>

#include "devices/bus.hpp"

namespace hvmm {

class HyperallocInstallPort : public BusDevice {
 public:
  explicit HyperallocInstallPort(std::function<void(uint32_t huge_idx)> install) : install_(std::move(install)) {}

  // Reads return all ones; a 4-byte write at offset 0 installs that huge frame. Anything else is
  // counted and ignored.
  void bus_read(uint64_t offset, uint8_t* data, unsigned len) override;
  void bus_write(uint64_t offset, const uint8_t* data, unsigned len) override;

  uint64_t invalid_accesses() const { return invalid_.load(std::memory_order_relaxed); }

 private:
  std::function<void(uint32_t)> install_;
  std::atomic<uint64_t> invalid_{0};
};

}  // namespace hvmm
