// The one place where a VM's typed replies (vm_api.hpp) become the control API's JSON
// (api/openapi.yaml describes it).
#pragma once
#include <nlohmann/json.hpp>

#include "vmm/api/vm_api.hpp"

namespace hvmm::api {

nlohmann::json to_json(const VmStatus& s);
nlohmann::json to_json(const MechanismDetail& s);
nlohmann::json to_json(const ResizeOutcome& r);

nlohmann::json to_json(const VmInfo& i);
nlohmann::json to_json(const AutoReclaimOutcome& r);

}  // namespace hvmm::api
