// The control API's error codes: one table, the only definition of each code, its HTTP status and
// what it means. The README ("The control API", "Errors") and the OpenAPI document
// (api/openapi.yaml) list the same codes; tests/api/test_http_api.cpp checks that they do.
#pragma once
#include <array>
#include <string_view>

namespace hvmm::api {

enum class ErrorCode {
  kBadRequest,        // the body is not the JSON object the endpoint wants, or a field is wrong
  kBadSize,           // "size" is not a size (e.g. "2X", negative, beyond 2^64)
  kNotFound,          // no such endpoint
  kMethodNotAllowed,  // the endpoint exists, with another method
  kPayloadTooLarge,   // the body is longer than kMaxBodyBytes
  kBelowFloor,        // a resize below --mem-min
  kAboveMaximum,      // a resize beyond the VM's memory
  kResizeFailed,      // the mechanism did not reach the target (it says how far it got)
  kUnsupported,       // this mechanism (or this build) cannot do it
  kStopping,          // the VM is shutting down
  kInternal,          // a bug in hvmm: the message says what failed
};

struct ErrorInfo {
  ErrorCode code;
  std::string_view name;  // the "code" field of {"error":{"code":..,"message":..}}
  unsigned http_status;
  std::string_view meaning;
};

inline constexpr std::array<ErrorInfo, 11> kErrors{{
    {ErrorCode::kBadRequest, "bad_request", 400, "the body is not the JSON object the endpoint expects, or a field has the wrong type"},
    {ErrorCode::kBadSize, "bad_size", 400, "\"size\" is not a size: a string like \"2G\" or a whole number of bytes"},
    {ErrorCode::kNotFound, "not_found", 404, "no such endpoint"},
    {ErrorCode::kMethodNotAllowed, "method_not_allowed", 405, "the endpoint exists with another method (the Allow header names it)"},
    {ErrorCode::kPayloadTooLarge, "payload_too_large", 413, "the request body is longer than 64 KiB"},
    {ErrorCode::kBelowFloor, "below_floor", 422, "a resize below the VM's floor (--mem-min)"},
    {ErrorCode::kAboveMaximum, "above_maximum", 422, "a resize beyond the VM's memory (--mem)"},
    {ErrorCode::kResizeFailed, "resize_failed", 409, "the mechanism did not reach the target; the message says how far it got"},
    {ErrorCode::kUnsupported, "unsupported", 501, "this mechanism cannot do that (e.g. auto-reclaim with --reclaim none)"},
    {ErrorCode::kStopping, "stopping", 503, "the VM is shutting down"},
    {ErrorCode::kInternal, "internal", 500, "an unexpected failure inside hvmm"},
}};

constexpr const ErrorInfo& error_info(ErrorCode c) {
  for (const auto& e : kErrors)
    if (e.code == c) return e;
  return kErrors.back();
}

}  // namespace hvmm::api
