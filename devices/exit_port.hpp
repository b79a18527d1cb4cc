// The guest exit port: a write of N stops the VM with exit status N (0..255).
#pragma once
#include "devices/bus.hpp"
#include "devices/vm_control.hpp"

namespace hvmm {

class ExitPort : public BusDevice {
 public:
  explicit ExitPort(VmControl& vm) : vm_(vm) {}
  void bus_read(uint64_t, uint8_t* data, unsigned len) override {
    for (unsigned i = 0; i < len; i++) data[i] = 0xff;
  }
  void bus_write(uint64_t, const uint8_t* data, unsigned len) override {
    if (len) vm_.request_exit(data[0], {});
  }

 private:
  VmControl& vm_;
};

}  // namespace hvmm
