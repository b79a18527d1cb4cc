#include "vmm/api/metrics.hpp"

#include <fmt/format.h>

#include <cctype>
#include <map>
#include <string_view>

namespace hvmm::api {
namespace {

using nlohmann::json;

// HELP for the figures a dashboard wants first; every other one is documented by vm.counters.
const std::map<std::string, std::string_view, std::less<>>& help_texts() {
  static const std::map<std::string, std::string_view, std::less<>> kHelp{
      {"hvmm_host_rss_bytes", "Resident memory of the hvmm process (guest memory the host backs)."},
      {"hvmm_guest_total_bytes", "All the memory the guest can have (--mem)."},
      {"hvmm_usable_bytes", "What the guest can use now: its memory minus what resize took."},
      {"hvmm_guest_free_bytes", "The guest's free memory, as far as the mechanism knows."},
      {"hvmm_detail_soft_bytes", "HyperAlloc: memory taken back by auto-reclaim (soft reclaim)."},
      {"hvmm_detail_hard_bytes", "HyperAlloc: memory taken back by resize (hard reclaim)."},
      {"hvmm_detail_installs", "HyperAlloc: reclaimed 2 MiB frames the guest asked back (installs)."},
      {"hvmm_uptime_seconds", "Seconds since the VM started."},
  };
  return kHelp;
}

std::string metric_name(std::string_view path) {
  std::string n = "hvmm_";
  for (char c : path) n += (std::isalnum(static_cast<unsigned char>(c)) || c == '_') ? c : '_';
  return n;
}

std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  return out;
}

void sample(std::string& out, const std::string& name, double value) {
  const auto& help = help_texts();
  if (const auto it = help.find(name); it != help.end()) out += fmt::format("# HELP {} {}\n", name, it->second);
  out += fmt::format("# TYPE {} gauge\n{} {}\n", name, name, value);
}

void walk(std::string& out, const json& j, const std::string& path) {
  for (const auto& [key, v] : j.items()) {
    const std::string p = path.empty() ? key : path + "_" + key;
    if (v.is_object()) {
      walk(out, v, p);
    } else if (v.is_boolean()) {
      sample(out, metric_name(p), v.get<bool>() ? 1 : 0);
    } else if (v.is_number()) {
      sample(out, metric_name(p == "uptime_s" ? "uptime_seconds" : p), v.get<double>());
    }
    // Strings and arrays: handled by the caller (mechanism, vcpu_cpu, guest_lies) or not numbers.
  }
}

}  // namespace

std::string prometheus_metrics(const json& counters) {
  std::string out;
  if (const auto m = counters.find("mechanism"); m != counters.end() && m->is_string())
    out += fmt::format("# HELP hvmm_info The VM's reclamation mechanism.\n# TYPE hvmm_info gauge\nhvmm_info{{mechanism=\"{}\"}} 1\n",
                       label_value(m->get<std::string>()));
  walk(out, counters, "");
  if (const auto c = counters.find("vcpu_cpu"); c != counters.end() && c->is_array()) {
    out += "# HELP hvmm_vcpu_cpu_seconds CPU time of each vCPU thread (service: runs a guest driver).\n"
           "# TYPE hvmm_vcpu_cpu_seconds counter\n";
    for (const auto& v : *c)
      if (v.is_object())
        out += fmt::format("hvmm_vcpu_cpu_seconds{{vcpu=\"{}\",service=\"{}\"}} {}\n", v.value("vcpu", 0u),
                           v.value("service", false), v.value("cpu_s", 0.0));
  }
  if (const auto l = counters.find("guest_lies"); l != counters.end() && l->is_array())
    out += fmt::format("# HELP hvmm_guest_lies Guest-reported values that were out of bounds.\n"
                       "# TYPE hvmm_guest_lies gauge\nhvmm_guest_lies {}\n", l->size());
  return out;
}

}  // namespace hvmm::api
