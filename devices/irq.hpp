// How a device signals an interrupt without knowing about KVM: one interface for every device
// model. The VMM owns the line (an IOAPIC pin through KVM_IRQ_LINE, or for the built-in guest,
// which takes no interrupts, a wake of its blocked vCPUs: see vmm/device_manager.cpp).
#pragma once

namespace hvmm {

// raise() when the device has news (for virtio: InterruptStatus became non-zero); lower() when the
// driver acknowledged everything (level-triggered lines need it, edge-triggered ones may ignore it).
struct IrqLine {
  virtual ~IrqLine() = default;
  virtual void raise() = 0;
  virtual void lower() {}
};

}  // namespace hvmm
