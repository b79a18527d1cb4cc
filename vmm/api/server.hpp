// The control socket: JSON lines over a Unix stream socket (see protocol.hpp for the requests).
#pragma once
#include <memory>
#include <string>

#include "vmm/api/control.hpp"

namespace hvmm::api {

// RAII: binds in the constructor, serves in background threads, and on destruction stops them and
// unlinks the socket file. Each client connection gets its own thread, so a blocking resize does not
// hold up a status request from another client. At most kMaxClients at once; more are told so and
// closed. A request line longer than kMaxRequestLine gets an error and the connection is closed.
class ControlServer {
 public:
  static constexpr int kMaxClients = 16;

  // Throws std::runtime_error with context when the socket cannot be created: path too long, a live
  // server already listening there, a non-socket file in the way, permission denied... A socket file
  // left by a dead process is removed and replaced.
  ControlServer(std::string path, ControlHandler& handler);
  // Waits for requests in progress (a handler call is never interrupted).
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hvmm::api
