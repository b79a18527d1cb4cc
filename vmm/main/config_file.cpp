// `hvmm run --config vm.json`: the same keys as the command-line options (cli.hpp).
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "vmm/main/cli.hpp"

namespace hvmm::cli {
namespace {

using nlohmann::json;

// A size or text option: a string, or (sizes) a whole number of bytes.
std::function<void(const json&, RunOptions&)> text(std::string RunOptions::*field, bool size = false) {
  return [field, size](const json& v, RunOptions& o) {
    if (v.is_string()) o.*field = v.get<std::string>();
    else if (size && v.is_number_unsigned()) o.*field = std::to_string(v.get<uint64_t>());
    else throw std::invalid_argument(size ? "a size like \"2G\" or a number of bytes" : "a string");
  };
}

const std::map<std::string, std::function<void(const json&, RunOptions&)>>& keys() {
  static const std::map<std::string, std::function<void(const json&, RunOptions&)>> kKeys{
      {"mem", text(&RunOptions::mem, true)},
      {"mem-min", text(&RunOptions::mem_min, true)},
      {"cpus",
       [](const json& v, RunOptions& o) {
         if (!v.is_number_unsigned() || v.get<uint64_t>() > 4096) throw std::invalid_argument("a number of vCPUs");
         o.cpus = v.get<unsigned>();
       }},
      {"kernel", text(&RunOptions::kernel)},
      {"cmdline", text(&RunOptions::cmdline)},
      {"workload",
       [](const json& v, RunOptions& o) {
         text(&RunOptions::workload)(v, o);
         o.workload_set = true;
       }},
      {"reclaim", text(&RunOptions::reclaim)},
      {"auto-reclaim",
       [](const json& v, RunOptions& o) {  // true: the default period; "2s": that period; false: off
         if (v.is_boolean()) {
           o.auto_reclaim_set = v.get<bool>();
           o.auto_reclaim.clear();
         } else if (v.is_string()) {
           o.auto_reclaim_set = true;
           o.auto_reclaim = v.get<std::string>();
         } else {
           throw std::invalid_argument("true, false or a period like \"500ms\"");
         }
       }},
      {"virtio-mem-boot", text(&RunOptions::virtio_mem_boot, true)},
      {"virtio-mem-step", text(&RunOptions::virtio_mem_step, true)},
      {"api-sock", text(&RunOptions::api_sock)},
      {"quiet",
       [](const json& v, RunOptions& o) {
         if (!v.is_boolean()) throw std::invalid_argument("true or false");
         o.quiet = v.get<bool>();
       }},
  };
  return kKeys;
}

}  // namespace

void apply_config_file(const std::string& path, RunOptions& o, const std::vector<std::string>& given) {
  std::ifstream f(path);
  if (!f) throw std::invalid_argument(fmt::format("--config {}: cannot open it", path));
  std::stringstream ss;
  ss << f.rdbuf();
  if (ss.str().size() > 1024 * 1024) throw std::invalid_argument(fmt::format("--config {}: larger than 1 MiB", path));
  const json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw std::invalid_argument(fmt::format("--config {}: not a JSON object like {{\"mem\":\"8G\",\"cpus\":2}}", path));
  for (const auto& [key, value] : j.items()) {
    const auto k = keys().find(key);
    if (k == keys().end()) {
      std::string known;
      for (const auto& [name, _] : keys()) known += (known.empty() ? "" : ", ") + name;
      throw std::invalid_argument(fmt::format("--config {}: unknown key \"{}\" (keys: {})", path, key.substr(0, 64), known));
    }
    if (std::find(given.begin(), given.end(), key) != given.end()) continue;  // the command line wins
    try {
      k->second(value, o);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(fmt::format("--config {}: \"{}\" must be {}", path, key, e.what()));
    }
  }
}

}  // namespace hvmm::cli
