// GET /metrics: the figures of GET vm.counters in the Prometheus text format. Built from the
// counters' JSON (vm_json.cpp) rather than from the typed status, so every field a mechanism adds
// there appears here too, under the same name: `detail.installs` -> hvmm_detail_installs.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace hvmm::api {

// Every number and boolean of `counters` (a vm.counters object) as one sample, named hvmm_ + its
// path joined by '_'; vcpu_cpu as hvmm_vcpu_cpu_seconds{vcpu,service}; guest_lies as a count; a few
// well-known ones with HELP text. Strings (the mechanism) go into hvmm_info{mechanism="..."}.
std::string prometheus_metrics(const nlohmann::json& counters);

}  // namespace hvmm::api
