// The `hvmm ctl` side of the control socket.
#pragma once
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vmm/api/unix_socket.hpp"

namespace hvmm::api {

// One connection to a control server; several requests may go over it, one after another.
class ControlClient {
 public:
  // Throws std::runtime_error, e.g. "cannot connect to /tmp/vm.sock: No such file or directory
  // (is the VM running?)".
  explicit ControlClient(const std::string& sock_path);

  // Sends one request and waits for its response (no timeout: a resize may take a while).
  // Throws std::runtime_error when the connection breaks or the answer is not a JSON object.
  nlohmann::json request(const nlohmann::json& req);

  // Raw access, for scripts and tests: send bytes as they are; read one response line
  // (std::nullopt at end of stream or on error).
  bool send_raw(std::string_view bytes);
  std::optional<std::string> read_line();

  int fd() const { return fd_.get(); }

 private:
  std::string path_;
  Fd fd_;
  LineReader reader_;
};

// Runs one ctl command: args = {"status"} | {"resize", "2G"} | {"shutdown"}. Prints the result on
// `out` (status: the JSON object, indented; resize: "resized to 2.0 GiB in 12.3 ms"; shutdown: a
// confirmation) and problems as one line "hvmm ctl: ..." on `err`. Returns the exit code: 0 ok,
// 1 error (including ok=false from the server and usage errors).
int run_ctl(const std::string& sock_path, const std::vector<std::string>& args, std::ostream& out,
            std::ostream& err);
// The same on stdout/stderr.
int run_ctl(const std::string& sock_path, const std::vector<std::string>& args);

}  // namespace hvmm::api
