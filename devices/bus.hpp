// One bus type for both port I/O and MMIO: maps [base, base+len) ranges to devices and forwards
// accesses with the offset inside the range.
#pragma once
#include <cstdint>
#include <shared_mutex>
#include <vector>

namespace hvmm {

struct BusDevice {
  virtual ~BusDevice() = default;
  // `offset` is relative to the device's base; the whole access [offset, offset+len) lies inside
  // the registered range. Devices serialise their own state: several vCPU threads may call in.
  virtual void bus_read(uint64_t offset, uint8_t* data, unsigned len) = 0;
  virtual void bus_write(uint64_t offset, const uint8_t* data, unsigned len) = 0;
};

// Thread-safe: add() may run at any time, read()/write() concurrently from vCPU threads (shared
// lock held during dispatch, so add() waits for in-flight accesses). The Bus does not own devices;
// they must outlive it.
class Bus {
 public:
  // Throws std::invalid_argument on zero length, base+len wrapping, overlap, or a null device.
  void add(uint64_t base, uint64_t len, BusDevice* dev);
  // False when no device covers all of [addr, addr+len) (or len == 0); read() then fills `data`
  // with 0xff bytes, as open bus does. The caller counts and logs.
  bool read(uint64_t addr, uint8_t* data, unsigned len);
  bool write(uint64_t addr, const uint8_t* data, unsigned len);

 private:
  struct Range {
    uint64_t base, len;
    BusDevice* dev;
  };
  // The range holding [addr, addr+len) wholly, or nullptr. Caller holds mu_.
  const Range* find(uint64_t addr, unsigned len) const;

  mutable std::shared_mutex mu_;
  std::vector<Range> ranges_;  // sorted by base, disjoint
};

}  // namespace hvmm
