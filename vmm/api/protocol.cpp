#include "vmm/api/protocol.hpp"

#include <fmt/format.h>

#include <exception>
#include <optional>

#include "vmm/api/size_parse.hpp"

namespace hvmm::api {
namespace {

using nlohmann::json;

// Handler results must be objects with "ok"; anything else is wrapped rather than refused.
json normalise(json r) {
  if (!r.is_object()) return json{{"ok", true}, {"result", std::move(r)}};
  if (!r.contains("ok")) r["ok"] = true;
  return r;
}

// The "size" field: "2G"-style string or a non-negative integer number of bytes.
std::optional<uint64_t> size_field(const json& req, std::string* error) {
  const auto it = req.find("size");
  if (it == req.end()) {
    *error = "resize needs \"size\" (e.g. \"2G\" or a number of bytes)";
    return std::nullopt;
  }
  if (it->is_string()) return parse_size(it->get_ref<const std::string&>(), error);
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer()) {  // signed and therefore negative here
    *error = "negative size";
    return std::nullopt;
  }
  *error = "\"size\" must be a string like \"2G\" or a whole number of bytes";
  return std::nullopt;
}

json dispatch(const json& req, ControlHandler& handler) {
  if (!req.is_object()) return error_response("request must be a JSON object like {\"cmd\":\"status\"}");
  const auto cmd_it = req.find("cmd");
  if (cmd_it == req.end() || !cmd_it->is_string())
    return error_response("request needs a string \"cmd\" (status, resize, continue or shutdown)");
  const auto& cmd = cmd_it->get_ref<const std::string&>();

  if (cmd == "status") return normalise(handler.status());
  if (cmd == "shutdown") return normalise(handler.shutdown());
  if (cmd == "continue") return normalise(handler.continue_guest());
  if (cmd == "resize") {
    std::string error;
    const auto size = size_field(req, &error);
    if (!size) return error_response(error);
    return normalise(handler.resize(*size));
  }
  return error_response(fmt::format("unknown command '{}' (expected status, resize, continue or shutdown)",
                                    cmd.substr(0, 64)));
}

}  // namespace

json error_response(std::string message) {
  return json{{"ok", false}, {"error", std::move(message)}};
}

std::string to_line(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  s += '\n';
  return s;
}

json handle_request(std::string_view line, ControlHandler& handler) {
  try {
    const json req = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (req.is_discarded()) return error_response("malformed JSON request");
    return dispatch(req, handler);
  } catch (const std::exception& e) {
    return error_response(fmt::format("internal error: {}", e.what()));
  } catch (...) {
    return error_response("internal error");
  }
}

}  // namespace hvmm::api
