#include "vmm/api/unix_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hvmm::api {

Fd connect_unix(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    errno = ENAMETOOLONG;
    return Fd();
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int saved = errno;
    fd.reset();
    errno = saved;
  }
  return fd;
}

namespace {

// Waits until `fd` has `events` or `cancel_fd` is readable. True when fd is ready.
bool wait_for(int fd, short events, int cancel_fd) {
  pollfd fds[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
  const nfds_t n = cancel_fd >= 0 ? 2 : 1;
  for (;;) {
    const int rc = ::poll(fds, n, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return false;
    if (n == 2 && (fds[1].revents & POLLIN)) return false;
    // POLLHUP/POLLERR: let the following read/write report what happened.
    return true;
  }
}

}  // namespace

bool write_all(int fd, std::string_view data, int cancel_fd) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(fd, POLLOUT, cancel_fd)) return false;
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace hvmm::api
