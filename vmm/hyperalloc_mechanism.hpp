// --reclaim hyperalloc (the default): the guest registers its LLFree state with the hyperalloc
// device at boot; resize hard-reclaims/returns huge frames in the shared words, --auto-reclaim runs
// the soft-reclaim thread, and the guest installs reclaimed frames synchronously (reclaim/).
#pragma once
#include <memory>
#include <mutex>
#include <optional>

#include "devices/hyperalloc.hpp"
#include "reclaim/auto_reclaim.hpp"
#include "vmm/reclaim_mechanism.hpp"

namespace hvmm {

class HyperallocMechanism final : public ReclaimMechanism {
 public:
  explicit HyperallocMechanism(reclaim::AutoReclaimConfig auto_cfg = {}) : auto_cfg_(auto_cfg) {}
  const char* name() const override { return "hyperalloc"; }
  void attach(VmWiring& w) override;
  nlohmann::json status() override;
  nlohmann::json resize(uint64_t target_bytes) override;
  void start_auto(std::chrono::milliseconds period) override;
  std::string status_line() override;
  void stop() override;

 private:
  void on_registered(reclaim::ZoneState& zone);

  reclaim::AutoReclaimConfig auto_cfg_;
  std::unique_ptr<HyperallocDevice> device_;
  std::mutex mu_;  // guards auto_, auto_wanted_, target_, stopped_
  std::unique_ptr<reclaim::AutoReclaim> auto_;
  bool auto_wanted_ = false;
  bool stopped_ = false;
  std::optional<uint64_t> target_;
  std::mutex resize_mu_;  // one resize at a time
};

}  // namespace hvmm
