#include "vmm/api/ctl.hpp"

#include <fmt/format.h>

#include <map>
#include <ostream>

#include <nlohmann/json.hpp>

#include "vmm/api/http_client.hpp"
#include "vmm/api/size_parse.hpp"

namespace hvmm::api {
namespace {

using nlohmann::json;

constexpr const char* kCommands =
    "expected status, info, ping, resize SIZE, auto-reclaim on [PERIOD] | off, continue, shutdown or metrics";

struct Request {
  std::string method, path, body;
};

// The error object's message, or the raw body when the server sent something else.
std::string error_text(const HttpResponse& r) {
  const json j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const json& e = j["error"];
    return fmt::format("{} ({})", e.value("message", "no message"), e.value("code", "no code"));
  }
  return fmt::format("HTTP {}: {}", r.status, r.body.substr(0, 200));
}

}  // namespace

int run_ctl(const std::string& sock_path, const std::vector<std::string>& args, bool pretty, std::ostream& out,
            std::ostream& err) {
  auto usage_error = [&](const std::string& msg) {
    err << "hvmm ctl: " << msg << "\n";
    return kCtlUsage;
  };
  if (args.empty()) return usage_error(fmt::format("no command given ({})", kCommands));
  const std::string& cmd = args[0];
  static const std::map<std::string, size_t> kArgs{{"status", 1}, {"info", 1},     {"ping", 1},     {"resize", 2},
                                                   {"continue", 1}, {"shutdown", 1}, {"metrics", 1}, {"auto-reclaim", 0}};
  const auto known = kArgs.find(cmd);
  if (known == kArgs.end()) return usage_error(fmt::format("unknown command '{}' ({})", cmd, kCommands));
  if (known->second != 0 && args.size() != known->second)
    return usage_error(cmd == "resize" ? "resize needs exactly one SIZE (e.g. 2G)" : fmt::format("'{}' takes no arguments", cmd));

  // Arguments are checked here, so a typo is reported without bothering the VM.
  Request req;
  uint64_t target = 0;
  if (cmd == "status") req = {"GET", "/api/v1/vm.counters", ""};
  else if (cmd == "info") req = {"GET", "/api/v1/vm.info", ""};
  else if (cmd == "ping") req = {"GET", "/api/v1/vmm.ping", ""};
  else if (cmd == "metrics") req = {"GET", "/metrics", ""};
  else if (cmd == "continue") req = {"PUT", "/api/v1/vm.continue", ""};
  else if (cmd == "shutdown") req = {"PUT", "/api/v1/vm.shutdown", ""};
  else if (cmd == "resize") {
    std::string why;
    const auto size = parse_size(args[1], &why);
    if (!size) return usage_error(why);
    target = *size;
    req = {"PUT", "/api/v1/vm.resize", json{{"size", target}}.dump()};
  } else {  // auto-reclaim
    const bool on = args.size() >= 2 && args[1] == "on" && args.size() <= 3;
    const bool off = args.size() == 2 && args[1] == "off";
    if (!on && !off) return usage_error("auto-reclaim takes 'on [PERIOD]' or 'off'");
    json body{{"enabled", on}};
    if (on && args.size() == 3) {
      std::string why;
      if (!parse_period(args[2], &why)) return usage_error(why);
      body["period"] = args[2];
    }
    req = {"PUT", "/api/v1/vm.auto-reclaim", body.dump()};
  }

  HttpResponse r;
  try {
    r = http_request(sock_path, req.method, req.path, req.body);
  } catch (const std::exception& e) {
    err << "hvmm ctl: " << e.what() << "\n";
    return kCtlNoConnection;
  }
  if (r.status >= 300) {
    err << "hvmm ctl: " << cmd << (cmd == "resize" ? " to " + format_size(target) : "") << " refused: " << error_text(r)
        << "\n";
    return kCtlRefused;
  }
  if (cmd == "metrics") {
    out << r.body;
  } else if (cmd == "status" || cmd == "info" || cmd == "ping" || cmd == "auto-reclaim") {
    const json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded()) {
      err << "hvmm ctl: the VM answered with something that is not JSON\n";
      return kCtlNoConnection;
    }
    out << j.dump(pretty ? 2 : -1, ' ', false, json::error_handler_t::replace) << "\n";
  } else if (cmd == "resize") {
    const json j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("elapsed_ms") && j["elapsed_ms"].is_number())
      out << fmt::format("resized to {} in {:.1f} ms\n", format_size(target), j["elapsed_ms"].get<double>());
    else
      out << fmt::format("resized to {}\n", format_size(target));
  } else if (cmd == "continue") {
    out << "guest released from its barrier\n";
  } else {
    out << "shutdown requested\n";
  }
  return kCtlOk;
}

}  // namespace hvmm::api
