// I/O helpers for the control socket (a Unix stream socket); the fds are hvmm::Fd.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/fd.hpp"

namespace hvmm::api {

// Connects a blocking stream socket to `path`. On failure: an invalid fd and errno set
// (ENAMETOOLONG when the path does not fit in sockaddr_un).
Fd connect_unix(const std::string& path);

// Writes all of `data`, retrying on EINTR/EAGAIN (waiting with poll). When `cancel_fd` >= 0 and
// becomes readable, gives up. Never raises SIGPIPE. False on error, peer gone or cancel.
bool write_all(int fd, std::string_view data, int cancel_fd = -1);

}  // namespace hvmm::api
