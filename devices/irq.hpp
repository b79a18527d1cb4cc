// How a device signals an interrupt without knowing about KVM (DESIGN.md §2). There is one
// interrupt-line interface for every device model; it was defined first with the virtio models
// (raise(), optional lower() for level-triggered lines), so this header re-exports it as
// hvmm::IrqLine for the devices outside virtio.
#pragma once
#include "devices/virtio/device.hpp"

namespace hvmm {
using IrqLine = virtio::IrqLine;
}  // namespace hvmm
