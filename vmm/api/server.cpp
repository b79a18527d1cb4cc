#include "vmm/api/server.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <thread>

#include "vmm/api/protocol.hpp"
#include "vmm/api/unix_socket.hpp"

namespace hvmm::api {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw std::runtime_error(fmt::format("control socket {}: {}: {}", path, what, std::strerror(err)));
}

// A file already at `path`: a socket nobody listens on (left by a dead process) is removed; a live
// server or anything that is not a socket is an error.
void clear_stale_socket(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    fail(path, "cannot inspect existing path", errno);
  }
  if (!S_ISSOCK(st.st_mode))
    throw std::runtime_error(fmt::format("control socket {}: path exists and is not a socket; not touching it", path));
  Fd probe = connect_unix(path);
  if (probe.valid())
    throw std::runtime_error(fmt::format("control socket {}: already in use by a running server", path));
  if (errno != ECONNREFUSED) fail(path, "cannot probe existing socket", errno);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail(path, "cannot remove stale socket", errno);
}

}  // namespace

struct ControlServer::Impl {
  struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  std::string path;
  ControlHandler& handler;
  Fd listen_fd;
  Fd stop_fd;  // eventfd: once written, readable for good, so every poll wakes up
  std::thread acceptor;
  std::mutex mu;
  std::list<Connection> connections;  // guarded by mu; a list so elements stay put
  std::pair<dev_t, ino_t> bound_file{};  // identity of the socket file we created

  Impl(std::string p, ControlHandler& h) : path(std::move(p)), handler(h) {}

  void bind_and_listen() {
    sockaddr_un addr{};
    if (path.empty()) throw std::runtime_error("control socket: empty path");
    if (path.size() >= sizeof(addr.sun_path))
      throw std::runtime_error(fmt::format("control socket {}: path too long ({} bytes, at most {})", path,
                                           path.size(), sizeof(addr.sun_path) - 1));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

    clear_stale_socket(path);
    listen_fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listen_fd.valid()) fail(path, "socket", errno);
    if (::bind(listen_fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
      fail(path, "bind", errno);
    if (::listen(listen_fd.get(), 16) != 0) {
      const int err = errno;
      ::unlink(path.c_str());
      fail(path, "listen", err);
    }
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0) bound_file = {st.st_dev, st.st_ino};
    stop_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_fd.valid()) {
      const int err = errno;
      ::unlink(path.c_str());
      fail(path, "eventfd", err);
    }
  }

  void accept_loop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd.get(), POLLIN, 0}, {stop_fd.get(), POLLIN, 0}};
      const int rc = ::poll(fds, 2, -1);
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0 || (fds[1].revents & POLLIN)) return;
      Fd conn(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (!conn.valid()) {
        // EAGAIN after a client gave up, or out of fds: nothing to do but wait for the next one.
        if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      std::lock_guard lock(mu);
      reap_finished_locked();
      if (connections.size() >= static_cast<size_t>(kMaxClients)) {
        write_all(conn.get(), to_line(error_response("too many control clients; try again later")), stop_fd.get());
        continue;
      }
      Connection& c = connections.emplace_back();
      try {
        c.thread = std::thread([this, &c, fd = std::move(conn)]() mutable {
          serve(fd.get());
          fd.reset();
          c.done.store(true, std::memory_order_release);
        });
      } catch (const std::system_error&) {
        connections.pop_back();  // no thread to be had: drop this client (its fd closes), keep serving
      }
    }
  }

  void reap_finished_locked() {
    for (auto it = connections.begin(); it != connections.end();) {
      if (it->done.load(std::memory_order_acquire)) {
        it->thread.join();
        it = connections.erase(it);
      } else {
        ++it;
      }
    }
  }

  // One client: read request lines, answer each, until EOF, error, an oversize line or stop.
  void serve(int fd) {
    LineReader reader(kMaxRequestLine);
    std::string line;
    for (;;) {
      switch (reader.next(fd, line, stop_fd.get())) {
        case LineReader::Status::kLine:
          if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank line: ignore
          if (!write_all(fd, to_line(handle_request(line, handler)), stop_fd.get())) return;
          continue;
        case LineReader::Status::kTooLong:
          write_all(fd, to_line(error_response(fmt::format("request line longer than {} bytes; closing connection",
                                                           kMaxRequestLine))),
                    stop_fd.get());
          return;
        case LineReader::Status::kEof:
        case LineReader::Status::kError:
        case LineReader::Status::kCancelled:
          return;
      }
    }
  }

  void stop() {
    const uint64_t one = 1;
    // An eventfd write of 1 cannot fail short of a counter overflow; nothing useful to do if it did.
    [[maybe_unused]] const ssize_t n = ::write(stop_fd.get(), &one, sizeof(one));
    if (acceptor.joinable()) acceptor.join();
    std::lock_guard lock(mu);
    for (auto& c : connections)
      if (c.thread.joinable()) c.thread.join();
    connections.clear();
    unlink_if_ours();
  }

  // Removes the socket file unless someone replaced it with another one meanwhile.
  void unlink_if_ours() {
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0 && st.st_dev == bound_file.first && st.st_ino == bound_file.second)
      ::unlink(path.c_str());
  }
};

ControlServer::ControlServer(std::string path, ControlHandler& handler)
    : impl_(std::make_unique<Impl>(std::move(path), handler)) {
  impl_->bind_and_listen();
  try {
    impl_->acceptor = std::thread([impl = impl_.get()] { impl->accept_loop(); });
  } catch (...) {
    impl_->unlink_if_ours();
    throw;
  }
}

ControlServer::~ControlServer() { impl_->stop(); }

const std::string& ControlServer::path() const { return impl_->path; }

}  // namespace hvmm::api
