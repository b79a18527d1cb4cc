// Talking to a running VM's control API (HTTP on its Unix socket) from a KVM test: `hvmm ctl` as a
// child process. Its exit status: 0 done, 1 refused by the VM, 2 usage, 3 cannot connect.
#pragma once
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "hvmm_env.hpp"

namespace hvmm::testing {

// `hvmm ctl --api-sock SOCK ARGS...`, with its own hard timeout.
inline ProcessResult ctl(const std::string& sock, std::vector<std::string> args,
                         std::chrono::milliseconds limit = std::chrono::milliseconds(60'000)) {
  std::vector<std::string> argv{hvmm_binary(), "ctl", "--api-sock", sock};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(std::move(argv), ChildOptions{.timeout = limit});
}

// `hvmm ctl status` (GET /api/v1/vm.counters) as JSON; nullopt when the VM did not answer.
inline std::optional<nlohmann::json> ctl_status(const std::string& sock) {
  auto r = ctl(sock, {"status"}, std::chrono::milliseconds(10'000));
  if (!r.exited || r.status != 0) return std::nullopt;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

}  // namespace hvmm::testing
