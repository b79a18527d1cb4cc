#include "vmm/hyperalloc_mechanism.hpp"

#include <fmt/format.h>

#include "guest-alloc/abi_ports.hpp"
#include "vmm/api/size_parse.hpp"

namespace hvmm {

void HyperallocMechanism::attach(VmWiring& w) {
  device_ = std::make_unique<HyperallocDevice>(w.mem);
  std::vector<reclaim::GpaRange> protect;
  for (auto& r : w.protected_ranges) protect.push_back({r.gpa, r.len});
  device_->set_protected_ranges(std::move(protect));
  w.pio.add(abi::kPortHyperallocInstall, 4, device_.get());
  w.fdt.hyperalloc_install_port = abi::kPortHyperallocInstall;
  w.hypercalls.set_register_handler([this](uint64_t gpa) { return device_->register_zone(gpa); });
  device_->set_on_registered([this](reclaim::ZoneState& z) { on_registered(z); });
}

void HyperallocMechanism::on_registered(reclaim::ZoneState& zone) {
  std::lock_guard lock(mu_);
  if (auto_wanted_ && !auto_ && !stopped_) {
    auto_ = std::make_unique<reclaim::AutoReclaim>(zone, auto_cfg_);
    auto_->start();
  }
}

void HyperallocMechanism::start_auto(std::chrono::milliseconds period) {
  std::lock_guard lock(mu_);
  auto_cfg_.period = period;
  auto_wanted_ = true;
  if (auto zone = device_ ? device_->zone() : nullptr; zone && !auto_ && !stopped_) {
    auto_ = std::make_unique<reclaim::AutoReclaim>(*zone, auto_cfg_);
    auto_->start();
  }
}

void HyperallocMechanism::stop() {
  std::unique_ptr<reclaim::AutoReclaim> a;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    a = std::move(auto_);
  }
  if (a) a->stop();
}

nlohmann::json HyperallocMechanism::resize(uint64_t target_bytes) {
  auto* zone = device_ ? device_->zone() : nullptr;
  if (!zone) return {{"ok", false}, {"error", "the guest has not registered its allocator (yet): nothing to resize"}};
  std::lock_guard one(resize_mu_);
  auto r = zone->resize(target_bytes);
  {
    std::lock_guard lock(mu_);
    target_ = target_bytes;
  }
  nlohmann::json j{{"ok", r.reached},
                   {"elapsed_ms", std::chrono::duration<double, std::milli>(r.took).count()},
                   {"target_bytes", r.target_bytes},
                   {"usable_bytes", r.usable_bytes},
                   {"moved_bytes", r.moved_bytes}};
  if (!r.reached)
    j["error"] = fmt::format("reached {} of the {} target: {}", format_size(r.usable_bytes), format_size(target_bytes),
                             r.note.empty() ? "the guest uses the rest" : r.note);
  return j;
}

nlohmann::json HyperallocMechanism::status() {
  auto* zone = device_ ? device_->zone() : nullptr;
  if (!zone) return {{"registered", false}};
  auto s = zone->stats();
  nlohmann::json j{{"registered", true},
                   {"guest_free_bytes", s.guest_free_bytes},
                   {"usable_bytes", s.usable_bytes},
                   {"soft_bytes", s.soft_bytes},
                   {"hard_bytes", s.hard_bytes},
                   {"installs", s.installs},
                   {"redundant_installs", s.redundant_installs},
                   {"hard_reclaims", s.hard_reclaims},
                   {"soft_reclaims", s.soft_reclaims},
                   {"returns", s.returns},
                   {"anomalies", s.anomalies},
                   {"discard_failures", s.discard_failures},
                   {"populate_failures", s.populate_failures},
                   {"invalid_accesses", device_->invalid_accesses()}};
  std::lock_guard lock(mu_);
  j["target_bytes"] = target_.value_or(s.ram_bytes);
  if (auto_) {
    auto a = auto_->stats();
    j["auto_reclaim"] = {{"period_ms", auto_cfg_.period.count()},
                         {"age_scans", auto_cfg_.age_scans},
                         {"scans", a.scans},
                         {"reclaimed_frames", a.reclaimed_frames},
                         {"busy_ms", std::chrono::duration<double, std::milli>(a.busy).count()}};
  }
  return j;
}

std::string HyperallocMechanism::status_line() {
  auto* zone = device_ ? device_->zone() : nullptr;
  if (!zone) return "hyperalloc: waiting for the guest";
  auto s = zone->stats();
  return fmt::format("guest free {} | reclaimed {} (auto {}, resize {}) | installs {}", format_size(s.guest_free_bytes),
                     format_size(s.soft_bytes + s.hard_bytes), format_size(s.soft_bytes), format_size(s.hard_bytes),
                     s.installs);
}

}  // namespace hvmm
