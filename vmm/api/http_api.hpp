// The control API's request handling, without sockets: (method, path, body) -> (status, body).
// vmm/api/http_server.cpp feeds it what libmicrohttpd parsed; tests and the fuzz target
// (tests/api/fuzz_http_api.cpp) call it directly. The endpoints, their bodies and the error codes are
// in api/openapi.yaml and the README ("The control API").
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "vmm/api/api_error.hpp"
#include "vmm/api/vm_api.hpp"

namespace hvmm::api {

// Request bodies longer than this are refused (payload_too_large) before they are read.
inline constexpr size_t kMaxBodyBytes = 64 * 1024;
inline constexpr std::string_view kApiPrefix = "/api/v1/";

struct HttpReply {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string allow;  // for 405: the method the endpoint takes
};

// {"error":{"code":"bad_size","message":"..."}} with the code's HTTP status.
HttpReply error_reply(ErrorCode code, std::string message);

// Durations of the resizes that went through the API, for /metrics (a Prometheus histogram).
class ResizeHistogram {
 public:
  static constexpr std::array<double, 10> kBoundsSeconds{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60};
  void observe(double seconds);
  // The histogram in the Prometheus text format (hvmm_resize_duration_seconds).
  std::string prometheus() const;

 private:
  mutable std::mutex mu_;
  std::array<uint64_t, kBoundsSeconds.size()> buckets_{};  // guarded by mu_, not cumulative
  uint64_t count_ = 0;                                      // guarded by mu_
  double sum_ = 0;                                          // guarded by mu_
};

class ApiRouter {
 public:
  explicit ApiRouter(VmApi& vm) : vm_(vm) {}
  // Never throws: every problem becomes an error reply. Thread-safe (as VmApi is).
  HttpReply handle(std::string_view method, std::string_view path, std::string_view body);

 private:
  HttpReply route(std::string_view method, std::string_view path, std::string_view body);
  HttpReply resize(std::string_view body);
  HttpReply auto_reclaim(std::string_view body);
  HttpReply metrics();

  VmApi& vm_;
  ResizeHistogram resize_hist_;
};

}  // namespace hvmm::api
