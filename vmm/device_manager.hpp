// The VM's devices and the resources they take (ARCHITECTURE.md, "Adding a device or a
// mechanism"). The manager builds the core devices of the built-in guest (UART, exit port,
// hypercall port), hands out port ranges, virtio-mmio slots and IRQs from abi/layout.hpp — one
// allocator, so no two devices can get the same slot — puts each device on its bus, and collects
// the FDT node every device writes for itself. Everything is added before the vCPUs run.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "abi/layout.hpp"
#include "devices/bus.hpp"
#include "devices/exit_port.hpp"
#include "devices/hypercall_port.hpp"
#include "devices/irq.hpp"
#include "devices/serial.hpp"
#include "devices/virtio/mmio.hpp"
#include "memory/guest_memory.hpp"
#include "vmm/boot/fdt_builder.hpp"

namespace hvmm {

class DeviceManager {
 public:
  // All must outlive the manager.
  DeviceManager(const GuestMemory& mem, VmControl& vm, ConsoleSink& console, SerialSink& serial);
  DeviceManager(const DeviceManager&) = delete;
  DeviceManager& operator=(const DeviceManager&) = delete;

  Bus& pio() { return pio_; }
  Bus& mmio() { return mmio_; }
  HypercallPort& hypercalls() { return hypercalls_; }

  // A port-I/O device at its fixed range. `dev` must outlive the manager. Throws on overlap.
  void add_pio(layout::PortRange range, BusDevice& dev);
  // A virtio device on the next free virtio-mmio slot, with that slot's IRQ; the transport is the
  // manager's and writes its FDT node. `dev` must outlive the manager. Throws when the slots are
  // used up.
  virtio::MmioTransport& add_virtio(virtio::VirtioDevice& dev);
  // A device's own FDT node (e.g. the hyperalloc node), written in the order added.
  void add_fdt_node(boot::FdtNodeWriter node) { fdt_nodes_.push_back(std::move(node)); }
  const std::vector<boot::FdtNodeWriter>& fdt_nodes() const { return fdt_nodes_; }

  unsigned virtio_slots_used() const { return static_cast<unsigned>(virtio_.size()); }

 private:
  // The built-in guest takes no interrupts: a device's interrupt wakes the vCPUs blocked in a wait
  // hypercall instead (its drivers re-check their queues). A kernel with an interrupt controller
  // would get a KVM_IRQ_LINE here.
  class WakeGuestIrq final : public IrqLine {
   public:
    explicit WakeGuestIrq(HypercallPort& hc) : hc_(hc) {}
    void raise() override { hc_.wake_all(); }

   private:
    HypercallPort& hc_;
  };
  struct NoIrq final : IrqLine {
    void raise() override {}
  };

  const GuestMemory& mem_;
  Bus pio_, mmio_;
  NoIrq no_irq_;  // the UART's line: nothing listens (the built-in guest polls)
  Serial16550 serial_;
  ExitPort exit_;
  HypercallPort hypercalls_;
  WakeGuestIrq wake_irq_;
  std::vector<std::unique_ptr<virtio::MmioTransport>> virtio_;
  std::vector<boot::FdtNodeWriter> fdt_nodes_;
};

}  // namespace hvmm
