// --reclaim none: the VM keeps every page it ever touched (the "no reclamation" baseline).
#pragma once
#include "vmm/mechanisms/mechanism.hpp"

namespace hvmm {

class NoReclaim final : public ReclaimMechanism {
 public:
  const char* name() const override { return "none"; }
  void attach(VmWiring& w) override { ram_bytes_ = w.mem.ram_bytes(); }
  api::MechanismStatus status() override {
    return {.common = {.usable_bytes = ram_bytes_, .target_bytes = ram_bytes_, .guest_free_bytes = {}, .guest_lies = {}},
            .detail = api::NoReclaimStatus{}};
  }
  api::ResizeOutcome resize(uint64_t) override {
    return api::ResizeOutcome::failure("this VM runs with --reclaim none: it cannot be resized");
  }
  void start_auto(std::chrono::milliseconds) override {}
  std::string status_line() override { return "no reclamation"; }
  void stop() override {}

 private:
  uint64_t ram_bytes_ = 0;
};

}  // namespace hvmm
