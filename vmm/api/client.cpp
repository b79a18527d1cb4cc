#include "vmm/api/client.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <stdexcept>

#include "vmm/api/protocol.hpp"
#include "vmm/api/size_parse.hpp"

namespace hvmm::api {
namespace {

using nlohmann::json;

// Responses (a large status) may be longer than requests.
constexpr size_t kMaxResponseLine = 16 * 1024 * 1024;

constexpr const char* kCommands = "expected status, resize SIZE, continue or shutdown";

bool is_ok(const json& resp) {
  const auto it = resp.find("ok");
  return it != resp.end() && it->is_boolean() && it->get<bool>();
}

std::string error_text(const json& resp) {
  const auto it = resp.find("error");
  if (it != resp.end() && it->is_string()) return it->get<std::string>();
  return "server reported failure without a reason";
}

}  // namespace

ControlClient::ControlClient(const std::string& sock_path) : path_(sock_path), reader_(kMaxResponseLine) {
  fd_ = connect_unix(sock_path);
  if (!fd_.valid()) {
    const int e = errno;
    const bool not_running = e == ENOENT || e == ECONNREFUSED;
    throw std::runtime_error(fmt::format("cannot connect to {}: {}{}", sock_path, std::strerror(e),
                                         not_running ? " (is the VM running?)" : ""));
  }
}

bool ControlClient::send_raw(std::string_view bytes) { return write_all(fd_.get(), bytes); }

std::optional<std::string> ControlClient::read_line() {
  std::string line;
  if (reader_.next(fd_.get(), line) != LineReader::Status::kLine) return std::nullopt;
  return line;
}

json ControlClient::request(const json& req) {
  if (!send_raw(to_line(req)))
    throw std::runtime_error(fmt::format("cannot send request to {}: {}", path_, std::strerror(errno)));
  const auto line = read_line();
  if (!line) throw std::runtime_error(fmt::format("{} closed the connection without answering", path_));
  json resp = json::parse(*line, nullptr, /*allow_exceptions=*/false);
  if (resp.is_discarded() || !resp.is_object())
    throw std::runtime_error(fmt::format("{} answered with something that is not a JSON object", path_));
  return resp;
}

int run_ctl(const std::string& sock_path, const std::vector<std::string>& args, std::ostream& out,
            std::ostream& err) {
  auto usage_error = [&](const std::string& msg) {
    err << "hvmm ctl: " << msg << "\n";
    return 1;
  };
  if (args.empty()) return usage_error(fmt::format("no command given ({})", kCommands));
  const std::string& cmd = args[0];
  const size_t want_args = cmd == "resize" ? 2 : 1;
  if (cmd != "status" && cmd != "resize" && cmd != "shutdown" && cmd != "continue")
    return usage_error(fmt::format("unknown command '{}' ({})", cmd, kCommands));
  if (args.size() != want_args)
    return usage_error(cmd == "resize" ? "resize needs exactly one SIZE (e.g. 2G)"
                                       : fmt::format("'{}' takes no arguments", cmd));

  // Check the size here, so a typo is reported without bothering the VM.
  uint64_t target = 0;
  if (cmd == "resize") {
    std::string why;
    const auto size = parse_size(args[1], &why);
    if (!size) return usage_error(why);
    target = *size;
  }

  try {
    ControlClient client(sock_path);
    json req{{"cmd", cmd}};
    if (cmd == "resize") req["size"] = target;
    const json resp = client.request(req);
    if (!is_ok(resp)) {
      err << "hvmm ctl: " << cmd << (cmd == "resize" ? " to " + format_size(target) : "")
          << " failed: " << error_text(resp) << "\n";
      return 1;
    }
    if (cmd == "status") {
      out << resp.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    } else if (cmd == "resize") {
      const auto ms = resp.find("elapsed_ms");
      if (ms != resp.end() && ms->is_number())
        out << fmt::format("resized to {} in {:.1f} ms\n", format_size(target), ms->get<double>());
      else
        out << fmt::format("resized to {}\n", format_size(target));
    } else if (cmd == "continue") {
      out << "guest released from its barrier\n";
    } else {
      out << "shutdown requested\n";
    }
    return 0;
  } catch (const std::exception& e) {
    err << "hvmm ctl: " << e.what() << "\n";
    return 1;
  }
}

int run_ctl(const std::string& sock_path, const std::vector<std::string>& args) {
  return run_ctl(sock_path, args, std::cout, std::cerr);
}

}  // namespace hvmm::api
