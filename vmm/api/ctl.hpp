// `hvmm ctl`: the control API's commands on the command line, over HTTP (vmm/api/http_client.hpp).
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

namespace hvmm::api {

// `hvmm ctl`'s exit codes (README, "The control API").
inline constexpr int kCtlOk = 0;
inline constexpr int kCtlRefused = 1;    // the VM answered with an error (e.g. a resize below the floor)
inline constexpr int kCtlUsage = 2;      // bad command line: unknown command, bad SIZE (nothing was sent)
inline constexpr int kCtlNoConnection = 3;  // cannot connect, or the connection broke / was not HTTP

// Runs one ctl command: args = {"status"} | {"info"} | {"ping"} | {"resize", "2G"} |
// {"auto-reclaim", "on"[, PERIOD]} | {"auto-reclaim", "off"} | {"continue"} | {"shutdown"} |
// {"metrics"}. Prints the result on `out` (status/info/ping: one JSON line, indented with `pretty`;
// resize: "resized to 2.0 GiB in 12.3 ms"; metrics: the Prometheus text) and problems as one line
// "hvmm ctl: ..." on `err`. Returns one of the exit codes above.
int run_ctl(const std::string& sock_path, const std::vector<std::string>& args, bool pretty, std::ostream& out,
            std::ostream& err);

}  // namespace hvmm::api
