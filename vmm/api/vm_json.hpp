// The one place where a VM's typed replies (vm_api.hpp) become the control API's JSON, and the
// adapter that serves a VmApi on the control socket.
#pragma once
#include <nlohmann/json.hpp>

#include "vmm/api/control.hpp"
#include "vmm/api/vm_api.hpp"

namespace hvmm::api {

nlohmann::json to_json(const VmStatus& s);
nlohmann::json to_json(const MechanismDetail& s);
nlohmann::json to_json(const ResizeOutcome& r);

// Serves `vm` through the control protocol (protocol.hpp). `vm` must outlive it.
class VmApiHandler final : public ControlHandler {
 public:
  explicit VmApiHandler(VmApi& vm) : vm_(vm) {}
  nlohmann::json status() override { return to_json(vm_.status()); }
  nlohmann::json resize(uint64_t target_bytes) override { return to_json(vm_.resize(target_bytes)); }
  nlohmann::json shutdown() override;
  nlohmann::json continue_guest() override;

 private:
  VmApi& vm_;
};

}  // namespace hvmm::api
