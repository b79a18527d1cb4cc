// The control API over a real Unix socket (vmm/api/http_server.cpp) with a fake VM: the ctl client,
// libmicrohttpd's limits (idle connections cannot lock others out, oversize bodies are refused),
// curl, and the socket file's life.
#include <catch2/catch.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "fake_vm.hpp"
#include "vmm/api/ctl.hpp"
#include "vmm/api/http_client.hpp"
#include "vmm/api/http_server.hpp"
#include "vmm/api/unix_socket.hpp"

using namespace hvmm::api;
using hvmm::Fd;
using hvmm::api::test::FakeVm;
using hvmm::api::test::TempDir;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct Ctl {
  int code;
  std::string out, err;
};

Ctl ctl(const std::string& path, std::vector<std::string> args, bool pretty = false) {
  std::ostringstream out, err;
  const int code = run_ctl(path, args, pretty, out, err);
  return {code, out.str(), err.str()};
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

// Bytes the server sends on `fd` until it closes it, within `limit` (nullopt: still open then).
std::optional<std::string> read_until_closed(int fd, std::chrono::milliseconds limit) {
  std::string got;
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left <= 0ms) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
}

// A socket file with nobody listening, as a crashed VMM leaves behind.
void make_stale_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  ::close(fd);
}

// A fake VM served on a socket in a fresh directory.
struct Served {
  TempDir dir;
  std::string sock = dir.file("vm.sock");
  FakeVm vm;
  ApiRouter router{vm};
  HttpServer server;
  explicit Served(HttpServerLimits limits = {}) : server(sock, router, limits) {}
};

}  // namespace

TEST_CASE("ctl round trips over HTTP: ping, status, info, resize, auto-reclaim, continue, shutdown, metrics") {
  Served s;
  const std::string& sock = s.sock;
  FakeVm& vm = s.vm;
  CHECK(s.server.path() == sock);

  const Ctl st = ctl(sock, {"status"});
  CHECK(st.code == kCtlOk);
  CHECK(st.err.empty());
  CHECK(std::count(st.out.begin(), st.out.end(), '\n') == 1);  // one line unless --pretty
  CHECK(json::parse(st.out)["mechanism"] == "hyperalloc");
  const Ctl pretty = ctl(sock, {"status"}, true);
  CHECK(std::count(pretty.out.begin(), pretty.out.end(), '\n') > 10);
  CHECK(json::parse(ctl(sock, {"ping"}).out)["api"] == "v1");
  CHECK(json::parse(ctl(sock, {"info"}).out)["kernel"] == "built-in");

  const Ctl rs = ctl(sock, {"resize", "512M"});
  CHECK(rs.code == kCtlOk);
  CHECK(rs.out == "resized to 512 MiB in 1.5 ms\n");
  const Ctl floor = ctl(sock, {"resize", "128M"});
  CHECK(floor.code == kCtlRefused);
  CHECK_THAT(floor.err, Catch::Contains("below_floor"));
  CHECK(std::count(floor.err.begin(), floor.err.end(), '\n') == 1);

  CHECK(ctl(sock, {"auto-reclaim", "on", "2s"}).code == kCtlOk);
  CHECK(vm.auto_ms == 2000u);
  CHECK(ctl(sock, {"auto-reclaim", "off"}).code == kCtlOk);
  {
    std::lock_guard lock(vm.mu);  // the server's threads read it
    CHECK_FALSE(vm.auto_ms.has_value());
    vm.auto_supported = false;
  }
  CHECK(ctl(sock, {"auto-reclaim", "on"}).code == kCtlRefused);
  CHECK(ctl(sock, {"continue"}).code == kCtlOk);
  CHECK(vm.continues == 1);
  CHECK_THAT(ctl(sock, {"metrics"}).out, Catch::Contains("hvmm_resize_duration_seconds_count 1\n"));
  CHECK(ctl(sock, {"shutdown"}).code == kCtlOk);
  CHECK(vm.shutdowns == 1);
}

TEST_CASE("ctl exit codes: usage, cannot connect, refused") {
  TempDir dir;
  const std::string sock = dir.file("vm.sock");
  CHECK(ctl(sock, {"status"}).code == kCtlNoConnection);
  CHECK_THAT(ctl(sock, {"status"}).err, Catch::Contains("is the VM running?"));
  CHECK(ctl(sock, {"frobnicate"}).code == kCtlUsage);
  CHECK(ctl(sock, {}).code == kCtlUsage);
  CHECK(ctl(sock, {"resize"}).code == kCtlUsage);
  CHECK(ctl(sock, {"resize", "2X"}).code == kCtlUsage);
  CHECK(ctl(sock, {"auto-reclaim", "on", "5"}).code == kCtlUsage);  // a period needs a unit
  CHECK(ctl(sock, {"status", "extra"}).code == kCtlUsage);
}

TEST_CASE("64 idle connections do not lock out a 65th client, and idle ones are closed") {
  Served s(HttpServerLimits{.max_connections = 128, .idle_timeout = 2s});
  const std::string& sock = s.sock;
  std::vector<Fd> idle;
  for (int i = 0; i < 64; i++) {
    idle.push_back(connect_unix(sock));
    REQUIRE(idle.back().valid());
    if (i % 2) REQUIRE(write_all(idle.back().get(), "GET /api/v1/vm.in"));  // half a request line
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = http_request(sock, "GET", "/api/v1/vmm.ping");
  CHECK(r.status == 200);
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  // The idle ones are closed by the server after the idle timeout.
  const auto closed = read_until_closed(idle.front().get(), 10s);
  CHECK(closed.has_value());
  CHECK(read_until_closed(idle.back().get(), 10s).has_value());
}

TEST_CASE("a full server lets a new client in once the idle timeout has passed") {
  Served s(HttpServerLimits{.max_connections = 4, .idle_timeout = 1s});
  const std::string& sock = s.sock;
  std::vector<Fd> idle;
  for (int i = 0; i < 8; i++) idle.push_back(connect_unix(sock));
  std::this_thread::sleep_for(200ms);
  std::optional<unsigned> status;
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (!status && std::chrono::steady_clock::now() < end) {
    try {
      status = http_request(sock, "GET", "/api/v1/vmm.ping").status;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(100ms);  // closed at once: the limit; try again
    }
  }
  CHECK(status == 200u);
}

TEST_CASE("a body over the limit is refused, announced or chunked") {
  Served s;
  const std::string& sock = s.sock;
  FakeVm& vm = s.vm;
  const std::string mb(1024 * 1024, 'x');
  const auto r = http_request(sock, "PUT", "/api/v1/vm.resize", mb);
  CHECK(r.status == 413);
  CHECK(json::parse(r.body)["error"]["code"] == "payload_too_large");

  Fd fd = connect_unix(sock);
  REQUIRE(fd.valid());
  std::string req = "PUT /api/v1/vm.resize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  for (int i = 0; i < 20; i++) req += "10000\r\n" + std::string(0x10000, 'y') + "\r\n";
  req += "0\r\n\r\n";
  write_all(fd.get(), req);
  const auto got = read_until_closed(fd.get(), 10s);
  REQUIRE(got.has_value());
  CHECK_THAT(*got, Catch::StartsWith("HTTP/1.1 413"));
  CHECK(vm.resizes.empty());
}

TEST_CASE("a blocking resize does not hold up other clients") {
  Served s;
  const std::string& sock = s.sock;
  FakeVm& vm = s.vm;
  vm.block_resize = true;
  std::thread resizer([&] { CHECK(http_request(sock, "PUT", "/api/v1/vm.resize", R"({"size":"512M"})").status == 200); });
  vm.wait_until_resize_entered();
  CHECK(http_request(sock, "GET", "/api/v1/vm.counters").status == 200);
  vm.release();
  resizer.join();
}

TEST_CASE("clients that disconnect mid-request: nothing half-done, no SIGPIPE, the server serves on") {
  Served s;
  const std::string& sock = s.sock;
  FakeVm& vm = s.vm;
  auto resizes = [&] {
    std::lock_guard lock(vm.mu);
    return vm.resizes.size();
  };
  // Gone in the request line, in the headers, and in the body of a resize.
  for (const char* part : {"PUT /api/v1/vm.re", "PUT /api/v1/vm.resize HTTP/1.1\r\nHost: x\r\nContent-Le",
                           "PUT /api/v1/vm.resize HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{\"size\":"}) {
    Fd fd = connect_unix(sock);
    REQUIRE(fd.valid());
    REQUIRE(write_all(fd.get(), part));
  }
  CHECK(http_request(sock, "GET", "/api/v1/vmm.ping").status == 200);
  CHECK(resizes() == 0);  // a body cut short is never acted on

  // Gone while its resize runs: the resize completes (a resize is not undone halfway), the answer
  // goes nowhere, and writing it to a closed socket must not kill the process with SIGPIPE (this
  // test process has SIGPIPE's default action: it would die).
  {
    std::lock_guard lock(vm.mu);
    vm.block_resize = true;
  }
  {
    Fd fd = connect_unix(sock);
    REQUIRE(fd.valid());
    const std::string body = R"({"size":"512M"})";
    REQUIRE(write_all(fd.get(), "PUT /api/v1/vm.resize HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                    std::to_string(body.size()) + "\r\n\r\n" + body));
    vm.wait_until_resize_entered();
  }  // closed here, while the resize blocks
  vm.release();
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (resizes() == 0 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(10ms);
  CHECK(resizes() == 1);
  std::this_thread::sleep_for(100ms);  // the server writes its answer to the closed socket now
  CHECK(http_request(sock, "GET", "/api/v1/vm.counters").status == 200);
  CHECK(http_request(sock, "PUT", "/api/v1/vm.resize", R"({"size":"768M"})").status == 200);
  CHECK(resizes() == 2);
}

TEST_CASE("curl --unix-socket talks to the API") {
  if (std::system("curl --version > /dev/null 2>&1") != 0) {
    WARN("SKIPPED: curl is not installed (scripts/install-deps.sh installs it)");
    return;
  }
  Served s;
  const std::string& sock = s.sock;
  const std::string out = s.dir.file("out");
  const std::string cmd = "curl -sS --fail-with-body --unix-socket " + sock +
                          " -X PUT -d '{\"size\":\"512M\"}' http://localhost/api/v1/vm.resize > " + out;
  CHECK(std::system(cmd.c_str()) == 0);
  std::ifstream f(out);
  const json j = json::parse(f);
  CHECK(j["target_bytes"] == 512ull << 20);
}

TEST_CASE("the socket file: a stale one is replaced, a live one refused, ours removed at the end") {
  TempDir dir;
  const std::string sock = dir.file("vm.sock");
  FakeVm vm;
  ApiRouter router(vm);
  make_stale_socket(sock);
  {
    HttpServer server(sock, router);
    CHECK(http_request(sock, "GET", "/api/v1/vmm.ping").status == 200);
    CHECK_THROWS_WITH(HttpServer(sock, router), Catch::Contains("already in use"));
  }
  CHECK_FALSE(exists(sock));
  const std::string plain = dir.file("plain");
  { std::ofstream(plain) << "x"; }
  CHECK_THROWS_WITH(HttpServer(plain, router), Catch::Contains("not a socket"));
  CHECK(exists(plain));
}

TEST_CASE("the answer to vm.shutdown arrives although the server stops right after it") {
  // The VM stops the server as soon as shutdown() returned; the 204 must still be delivered.
  for (int round = 0; round < 20; round++) {
    TempDir dir;
    const std::string sock = dir.file("vm.sock");
    struct StopsAtOnce : FakeVm {
      std::mutex m;
      std::condition_variable stop_cv;
      bool stop = false;
      void shutdown() override {
        std::lock_guard lock(m);
        stop = true;
        stop_cv.notify_all();
      }
    } vm;
    ApiRouter router(vm);
    auto server = std::make_unique<HttpServer>(sock, router);
    std::thread stopper([&] {
      std::unique_lock lock(vm.m);
      vm.stop_cv.wait(lock, [&] { return vm.stop; });
      lock.unlock();
      server.reset();
    });
    unsigned status = 0;
    try {
      status = http_request(sock, "PUT", "/api/v1/vm.shutdown").status;
    } catch (const std::exception& e) {
      INFO(e.what());
    }
    stopper.join();
    INFO("round " << round);
    REQUIRE(status == 204);
  }
}
