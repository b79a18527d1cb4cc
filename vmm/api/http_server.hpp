// The control API's HTTP/1.1 server on a Unix socket (--api-sock). libmicrohttpd parses HTTP and
// runs one thread per connection (a blocking resize does not hold up anyone else); this file
// creates and owns the listening socket, sets the limits, and hands each complete request to the
// ApiRouter (vmm/api/http_api.hpp).
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "vmm/api/http_api.hpp"

namespace hvmm::api {

struct HttpServerLimits {
  // Connections at once. More are accepted and closed at once by libmicrohttpd.
  unsigned max_connections = 128;
  // A connection that sends or reads nothing for this long is closed, so idle or half-sent
  // requests cannot hold the server's connections (a handler that runs, e.g. a resize, is not cut).
  std::chrono::seconds idle_timeout{10};
};

// RAII: binds in the constructor, serves in background threads, and on destruction stops them
// (requests in progress finish) and unlinks the socket file.
class HttpServer {
 public:
  // Throws std::runtime_error with context when the socket cannot be created: path too long, a live
  // server already listening there, a non-socket file in the way, permission denied... A socket file
  // left by a dead process is removed and replaced.
  HttpServer(std::string path, ApiRouter& router, HttpServerLimits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hvmm::api
