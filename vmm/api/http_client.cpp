#include "vmm/api/http_client.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "vmm/api/unix_socket.hpp"

namespace hvmm::api {
namespace {

// Answers are small (vm.counters is a few KiB); a runaway server must not eat the client's memory.
constexpr size_t kMaxResponse = 16 * 1024 * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

HttpResponse http_request(const std::string& sock_path, std::string_view method, std::string_view path,
                          std::string_view body) {
  Fd fd = connect_unix(sock_path);
  if (!fd.valid()) {
    const int e = errno;
    const bool not_running = e == ENOENT || e == ECONNREFUSED;
    throw ConnectError(fmt::format("cannot connect to {}: {}{}", sock_path, std::strerror(e),
                                   not_running ? " (is the VM running?)" : ""));
  }
  std::string req = fmt::format("{} {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", method, path);
  if (!body.empty()) req += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", body.size());
  else if (method == "PUT" || method == "POST") req += "Content-Length: 0\r\n";
  req += "\r\n";
  req += body;
  // A server may answer and close before it read everything (e.g. 413 for an oversize body): then
  // the send fails, and the answer is what counts.
  const bool sent = write_all(fd.get(), req);
  const int send_errno = errno;

  std::string raw;
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), chunk, sizeof(chunk), 0);
    if (n > 0) {
      raw.append(chunk, static_cast<size_t>(n));
      if (raw.size() > kMaxResponse) throw std::runtime_error(fmt::format("{}: answer larger than 16 MiB", sock_path));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      if (!sent && raw.empty()) break;  // reported below with the send's error
      if (errno == ECONNRESET && !raw.empty()) break;  // the server closed after answering
      throw std::runtime_error(fmt::format("reading the answer from {}: {}", sock_path, std::strerror(errno)));
    }
  }
  const size_t head_end = raw.find("\r\n\r\n");
  if (raw.empty() && !sent)
    throw std::runtime_error(fmt::format("cannot send the request to {}: {}", sock_path, std::strerror(send_errno)));
  if (raw.empty()) throw std::runtime_error(fmt::format("{} closed the connection without answering", sock_path));
  if (head_end == std::string::npos || !raw.starts_with("HTTP/1."))
    throw std::runtime_error(fmt::format("{} did not answer in HTTP", sock_path));
  HttpResponse r;
  const std::string_view head(raw.data(), head_end);
  const size_t sp = head.find(' ');
  r.status = sp == std::string_view::npos ? 0 : static_cast<unsigned>(std::atoi(std::string(head.substr(sp + 1, 3)).c_str()));
  if (r.status < 100 || r.status > 599) throw std::runtime_error(fmt::format("{} sent a bad HTTP status line", sock_path));
  size_t content_length = std::string::npos;
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos) {
    const size_t next = head.find("\r\n", pos + 2);
    const std::string_view line = head.substr(pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
    if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
      const std::string name = lower(line.substr(0, colon));
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (name == "content-type") r.content_type = value;
      if (name == "content-length") content_length = std::strtoull(std::string(value).c_str(), nullptr, 10);
    }
    pos = next;
  }
  r.body = raw.substr(head_end + 4);
  if (content_length != std::string::npos && r.body.size() > content_length) r.body.resize(content_length);
  return r;
}

}  // namespace hvmm::api
