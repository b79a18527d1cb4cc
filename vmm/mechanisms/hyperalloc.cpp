#include "vmm/mechanisms/hyperalloc.hpp"

#include <fmt/format.h>

#include "abi/layout.hpp"
#include "vmm/api/size_parse.hpp"

namespace hvmm {

void HyperallocMechanism::attach(VmWiring& w) {
  ram_bytes_ = w.mem.ram_bytes();
  host_ = std::make_unique<reclaim::HyperallocHost>(w.mem, w.protected_ranges, auto_cfg_);
  port_ = std::make_unique<HyperallocInstallPort>([host = host_.get()](uint32_t idx) { host->install(idx); });
  w.devices.add_pio(layout::kHyperallocInstallPorts, *port_);
  w.devices.hypercalls().set_handler(abi::Hypercall::kHyperallocRegister, [host = host_.get()](const auto& r) {
    return static_cast<int64_t>(host->register_zone(r.args[0]) ? abi::HypercallStatus::kOk
                                                               : abi::HypercallStatus::kInvalid);
  });
  // The node tells the guest where to ask for installs (and that HyperAlloc is on).
  w.devices.add_fdt_node([](boot::FdtWriter& fdt) {
    fdt.begin_node("hyperalloc");
    fdt.prop_string("compatible", "hvmm,hyperalloc");
    fdt.prop_u32("hvmm,install-port", layout::kHyperallocInstallPorts.base);
    fdt.end_node();
  });
}

void HyperallocMechanism::start_auto(std::chrono::milliseconds period) { host_->start_auto(period); }

bool HyperallocMechanism::stop_auto() {
  if (host_) host_->stop_auto();
  return true;
}

void HyperallocMechanism::stop() {
  if (host_) host_->stop();
}

api::ResizeOutcome HyperallocMechanism::resize(uint64_t target_bytes) {
  auto r = host_->resize(target_bytes);
  if (!r) return api::ResizeOutcome::failure("the guest has not registered its allocator (yet): nothing to resize");
  api::ResizeOutcome out;
  out.ok = r->reached;
  out.elapsed_ms = std::chrono::duration<double, std::milli>(r->took).count();
  out.target_bytes = r->target_bytes;
  out.usable_bytes = r->usable_bytes;
  out.moved_bytes = r->moved_bytes;
  if (r->parts) {
    auto ms = [](std::chrono::nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); };
    out.shrink_parts_ms = api::ResizeOutcome::ShrinkPartsMs{ms(r->parts->residency), ms(r->parts->cas_walk),
                                                            ms(r->parts->discard), ms(r->parts->other)};
  }
  if (!r->reached)
    out.error = fmt::format("reached {} of the {} target: {}", format_size(r->usable_bytes), format_size(target_bytes),
                            r->note.empty() ? "the guest uses the rest" : r->note);
  return out;
}

api::MechanismStatus HyperallocMechanism::status() {
  reclaim::HyperallocStatus s = host_->status();
  api::MechanismStatus out;
  out.common.usable_bytes = s.registered ? s.zone.usable_bytes : ram_bytes_;
  out.common.target_bytes = s.target_bytes.value_or(ram_bytes_);
  if (s.registered) out.common.guest_free_bytes = s.zone.guest_free_bytes;
  const uint64_t invalid = port_->invalid_accesses() + s.installs_before_registration;
  out.detail = api::HyperallocMechanismStatus{std::move(s), invalid};
  return out;
}

std::string HyperallocMechanism::status_line() {
  auto* zone = host_->zone();
  if (!zone) return "hyperalloc: waiting for the guest";
  auto s = zone->stats();
  // Memory taken back apart from memory the guest never touched (which the host never had). The
  // counters are read one by one while they change: clamp instead of wrapping.
  auto minus = [](uint64_t a, uint64_t b) { return a > b ? a - b : 0; };
  return fmt::format("guest free {} | reclaimed {} (auto {}, resize {}) | never touched {} | reinstalls {}, first-touch "
                     "installs {}",
                     format_size(s.guest_free_bytes), format_size(s.reclaimed_bytes),
                     format_size(minus(s.soft_bytes, s.soft_untouched_bytes)),
                     format_size(minus(s.hard_bytes, s.hard_untouched_bytes)), format_size(s.untouched_bytes),
                     s.reinstalls, s.first_touch_installs);
}

}  // namespace hvmm
