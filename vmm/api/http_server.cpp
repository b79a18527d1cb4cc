#include "vmm/api/http_server.hpp"

#include <fmt/format.h>
#include <microhttpd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "base/fd.hpp"
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

// One request's body as it arrives; libmicrohttpd keeps the pointer between the handler's calls.
struct Pending {
  std::string body;
  bool too_large = false;
};

MHD_Result send_reply(MHD_Connection* c, const HttpReply& r) {
  MHD_Response* resp = MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()),
                                                       MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  if (!r.body.empty()) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
  if (!r.allow.empty()) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r.allow.c_str());
  const MHD_Result ret = MHD_queue_response(c, r.status, resp);
  MHD_destroy_response(resp);
  return ret;
}

// How long stop() waits for requests in progress to be answered before it cuts them.
constexpr std::chrono::seconds kDrainLimit{2};

HttpReply too_large(uint64_t bytes) {
  return error_reply(ErrorCode::kPayloadTooLarge,
                     fmt::format("the body has {}{} bytes; at most {}", bytes == 0 ? "more than " : "",
                                 bytes == 0 ? kMaxBodyBytes : bytes, kMaxBodyBytes));
}

}  // namespace

struct HttpServer::Impl {
  std::string path;
  ApiRouter& router;
  HttpServerLimits limits;
  MHD_Daemon* daemon = nullptr;
  std::pair<dev_t, ino_t> bound_file{};  // identity of the socket file we created
  std::mutex mu;
  std::condition_variable idle_cv;
  unsigned in_flight = 0;  // guarded by mu: requests begun and not yet answered in full

  Impl(std::string p, ApiRouter& r, HttpServerLimits l) : path(std::move(p)), router(r), limits(l) {}

  Fd bind_and_listen() {
    sockaddr_un addr{};
    if (path.empty()) throw std::runtime_error("control socket: empty path");
    if (path.size() >= sizeof(addr.sun_path))
      throw std::runtime_error(fmt::format("control socket {}: path too long ({} bytes, at most {})", path,
                                           path.size(), sizeof(addr.sun_path) - 1));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    clear_stale_socket(path);
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) fail(path, "socket", errno);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) fail(path, "bind", errno);
    if (::listen(fd.get(), 64) != 0) {
      const int err = errno;
      ::unlink(path.c_str());
      fail(path, "listen", err);
    }
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0) bound_file = {st.st_dev, st.st_ino};
    return fd;
  }

  // libmicrohttpd calls this first with the headers, then with each piece of the body, then once
  // more with nothing: only then is the request complete.
  static MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method,
                               const char* /*version*/, const char* upload_data, size_t* upload_size,
                               void** state) {
    auto* self = static_cast<Impl*>(cls);
    auto* p = static_cast<Pending*>(*state);
    if (!p) {
      p = new Pending;
      *state = p;
      {
        std::lock_guard lock(self->mu);
        ++self->in_flight;
      }
      // Refuse an announced oversize body before reading any of it.
      if (const char* len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        const unsigned long long n = std::strtoull(len, nullptr, 10);
        if (n > kMaxBodyBytes) {
          p->too_large = true;
          return send_reply(c, too_large(n));
        }
      }
      return MHD_YES;
    }
    if (*upload_size != 0) {
      if (!p->too_large && p->body.size() + *upload_size <= kMaxBodyBytes) p->body.append(upload_data, *upload_size);
      else p->too_large = true;  // chunked, without a length: drop the rest, refuse at the end
      *upload_size = 0;
      return MHD_YES;
    }
    if (p->too_large) return send_reply(c, too_large(0));
    return send_reply(c, self->router.handle(method, url, p->body));
  }

  // After the answer was sent (or the request abandoned).
  static void on_completed(void* cls, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
    if (!*state) return;
    delete static_cast<Pending*>(*state);
    *state = nullptr;
    auto* self = static_cast<Impl*>(cls);
    std::lock_guard lock(self->mu);
    if (--self->in_flight == 0) self->idle_cv.notify_all();
  }

  void start() {
    Fd fd = bind_and_listen();
    const unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
    daemon = MHD_start_daemon(
        flags, 0, nullptr, nullptr, &Impl::on_request, this,  //
        MHD_OPTION_LISTEN_SOCKET, fd.get(),                 //
        MHD_OPTION_CONNECTION_LIMIT, limits.max_connections,  //
        MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(limits.idle_timeout.count()),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(128 * 1024),  //
        MHD_OPTION_THREAD_STACK_SIZE, static_cast<size_t>(512 * 1024),        //
        MHD_OPTION_NOTIFY_COMPLETED, &Impl::on_completed, this,             //
        MHD_OPTION_END);
    if (!daemon) {
      unlink_if_ours();
      throw std::runtime_error(fmt::format("control socket {}: libmicrohttpd could not start", path));
    }
    listen_fd = std::move(fd);
  }

  void stop() {
    if (!daemon) return;
    // Stop accepting first (we own the listening fd, not libmicrohttpd), then end the connections;
    // requests in progress finish.
    MHD_quiesce_daemon(daemon);
    {
      // Let the answers already being sent go out (the 204 of the vm.shutdown that stops us):
      // stopping the daemon cuts every connection at once.
      std::unique_lock lock(mu);
      idle_cv.wait_for(lock, kDrainLimit, [this] { return in_flight == 0; });
    }
    MHD_stop_daemon(daemon);
    daemon = nullptr;
    listen_fd.reset();
    unlink_if_ours();
  }

  // Removes the socket file unless someone replaced it with another one meanwhile.
  void unlink_if_ours() {
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0 && st.st_dev == bound_file.first && st.st_ino == bound_file.second)
      ::unlink(path.c_str());
  }

  Fd listen_fd;
};

HttpServer::HttpServer(std::string path, ApiRouter& router, HttpServerLimits limits)
    : impl_(std::make_unique<Impl>(std::move(path), router, limits)) {
  impl_->start();
}

HttpServer::~HttpServer() { impl_->stop(); }

const std::string& HttpServer::path() const { return impl_->path; }

}  // namespace hvmm::api
