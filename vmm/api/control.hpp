// What a running VM offers to the control socket. Implemented by the VM runner.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

namespace hvmm::api {

// Called from the control server's connection threads, possibly from several at once (one per
// connected client): implementations must be thread-safe. Throwing is allowed; the client then gets
// {"ok":false,"error":"internal error: ..."}.
struct ControlHandler {
  virtual ~ControlHandler() = default;
  // One JSON object describing the VM. "ok":true is added when it has no "ok".
  virtual nlohmann::json status() = 0;
  // Blocks until the target is reached or failed. Returns {"ok":true,"elapsed_ms":..,...} or
  // {"ok":false,"error":"..."}.
  virtual nlohmann::json resize(uint64_t target_bytes) = 0;
  // Asks the VM to stop cleanly and returns at once. Must not destroy the ControlServer from this
  // call (the server's destructor joins the thread that is running it).
  virtual nlohmann::json shutdown() = 0;
  // Lets the guest past its next `barrier` workload step (or the one it is blocked in).
  virtual nlohmann::json continue_guest() {
    return {{"ok", false}, {"error", "continue is not supported here"}};
  }
};

}  // namespace hvmm::api
