// The client side of the control API: one HTTP/1.1 request over the Unix socket (`hvmm ctl`).
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>

namespace hvmm::api {

struct HttpResponse {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

// Nobody listens at the socket (no such file, refused, path too long...).
struct ConnectError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Sends `method path` with `body` (JSON when not empty) and "Connection: close", and reads the whole
// answer (no timeout: a resize may take a while). Throws ConnectError when it cannot connect, and
// std::runtime_error when the connection breaks or the answer is not HTTP.
HttpResponse http_request(const std::string& sock_path, std::string_view method, std::string_view path,
                          std::string_view body = {});

}  // namespace hvmm::api
