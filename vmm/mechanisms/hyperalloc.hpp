// --reclaim hyperalloc (the default): wiring only. The guest registers its LLFree state with a
// hypercall and asks for installs on the install port; both go to the HyperallocHost
// (reclaim/hyperalloc_host.hpp), which owns the zone state and the auto-reclaim thread.
#pragma once
#include <memory>

#include "devices/hyperalloc_port.hpp"
#include "reclaim/hyperalloc_host.hpp"
#include "vmm/mechanisms/mechanism.hpp"

namespace hvmm {

class HyperallocMechanism final : public ReclaimMechanism {
 public:
  explicit HyperallocMechanism(reclaim::AutoReclaimConfig auto_cfg = {}) : auto_cfg_(auto_cfg) {}
  const char* name() const override { return "hyperalloc"; }
  void attach(VmWiring& w) override;
  api::MechanismStatus status() override;
  api::ResizeOutcome resize(uint64_t target_bytes) override;
  void start_auto(std::chrono::milliseconds period) override;
  bool stop_auto() override;
  std::string status_line() override;
  void stop() override;

 private:
  reclaim::AutoReclaimConfig auto_cfg_;
  uint64_t ram_bytes_ = 0;
  std::unique_ptr<reclaim::HyperallocHost> host_;
  std::unique_ptr<HyperallocInstallPort> port_;
};

}  // namespace hvmm
