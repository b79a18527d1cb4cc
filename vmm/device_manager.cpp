#include "vmm/device_manager.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace hvmm {

DeviceManager::DeviceManager(const GuestMemory& mem, VmControl& vm, ConsoleSink& console, SerialSink& serial)
    : mem_(mem), serial_(serial, no_irq_), exit_(vm), hypercalls_(mem, vm, console), wake_irq_(hypercalls_) {
  add_pio(layout::kSerialPorts, serial_);
  add_pio(layout::kExitPorts, exit_);
  add_pio(layout::kHypercallPorts, hypercalls_);
}

void DeviceManager::add_pio(layout::PortRange range, BusDevice& dev) { pio_.add(range.base, range.len, &dev); }

virtio::MmioTransport& DeviceManager::add_virtio(virtio::VirtioDevice& dev) {
  const auto slot = static_cast<uint32_t>(virtio_.size());
  if (slot >= layout::kVirtioMmioSlots)
    throw std::runtime_error(fmt::format("no free virtio-mmio slot for device {} (all {} are taken)", dev.device_id(),
                                         layout::kVirtioMmioSlots));
  const uint64_t base = layout::kVirtioMmioBase + slot * layout::kVirtioMmioSlot;
  const uint32_t irq = layout::kVirtioIrqBase + slot;
  auto& t = *virtio_.emplace_back(std::make_unique<virtio::MmioTransport>(mem_, dev, wake_irq_));
  mmio_.add(base, layout::kVirtioMmioSlot, &t);
  // The transport's node (virtio-mmio binding): what a guest needs to find the device.
  add_fdt_node([base, irq](boot::FdtWriter& w) {
    w.begin_node(fmt::format("virtio_mmio@{:x}", base));
    w.prop_string("compatible", "virtio,mmio");
    w.prop_u64s("reg", {base, layout::kVirtioMmioSlot});
    w.prop_u32("interrupts", irq);
    w.end_node();
  });
  return t;
}

}  // namespace hvmm
