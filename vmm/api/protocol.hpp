// The control protocol's request dispatch, separate from the socket so it can be tested alone.
//
// Requests (one JSON object per line):  {"cmd":"status"}
//                                       {"cmd":"resize","size":"2G"}   (or "size": <bytes>)
//                                       {"cmd":"continue"}             (release a guest `barrier`)
//                                       {"cmd":"shutdown"}
// Response: one JSON object with "ok"; on failure {"ok":false,"error":"..."}.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vmm/api/control.hpp"

namespace hvmm::api {

inline constexpr size_t kMaxRequestLine = 64 * 1024;

// Parses one request line and runs it against `handler`. Never throws: every problem (malformed
// JSON, unknown command, bad size, a throwing handler) becomes {"ok":false,"error":"..."}.
nlohmann::json handle_request(std::string_view line, ControlHandler& handler);

// A ready-made error response.
nlohmann::json error_response(std::string message);

// Serialises one response/request as a single line ("...\n"). Invalid UTF-8 is replaced, never thrown.
std::string to_line(const nlohmann::json& j);

}  // namespace hvmm::api
