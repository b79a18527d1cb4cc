// I/O helpers for the control socket (Unix stream socket, JSON lines); the fds are hvmm::Fd.
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

// Buffered reader of '\n'-terminated lines from a stream socket, with a length cap.
class LineReader {
 public:
  enum class Status { kLine, kEof, kTooLong, kError, kCancelled };
  explicit LineReader(size_t max_line) : max_line_(max_line) {}
  // Next line (without '\n', and without a trailing '\r'). At end of stream, a non-empty unterminated
  // remainder is returned as a last line. kTooLong once the buffered line exceeds the cap.
  Status next(int fd, std::string& line, int cancel_fd = -1);

 private:
  size_t max_line_;
  std::string buf_;
  size_t scanned_ = 0;  // bytes of buf_ already searched for '\n'
  bool eof_ = false;
};

}  // namespace hvmm::api
