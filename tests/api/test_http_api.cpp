// The control API's request handling without sockets (vmm/api/http_api.hpp): every endpoint, every
// error code, and that the README and the OpenAPI document list the same error codes as the table.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fake_vm.hpp"
#include "vmm/api/http_api.hpp"

using namespace hvmm::api;
using nlohmann::json;

namespace {

json body(const HttpReply& r) { return json::parse(r.body); }

std::string error_code(const HttpReply& r) { return body(r)["error"]["code"].get<std::string>(); }

std::string read_text(const std::string& rel) {
  std::ifstream f(std::string(HVMM_SOURCE_DIR) + "/" + rel);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("GET endpoints answer with JSON objects") {
  test::FakeVm vm;
  ApiRouter api(vm);
  const auto ping = api.handle("GET", "/api/v1/vmm.ping", "");
  CHECK(ping.status == 200);
  CHECK(body(ping)["api"] == "v1");
  CHECK(body(ping)["version"].is_string());
  const auto info = api.handle("GET", "/api/v1/vm.info", "");
  CHECK(info.status == 200);
  CHECK(body(info)["mem_min_bytes"] == 256ull << 20);
  CHECK(body(info)["auto_reclaim"]["enabled"] == false);
  const auto counters = api.handle("GET", "/api/v1/vm.counters", "");
  CHECK(counters.status == 200);
  CHECK(body(counters)["mechanism"] == "hyperalloc");
  CHECK(body(counters)["usable_bytes"] == 1ull << 30);
}

TEST_CASE("vm.resize takes a size string or bytes and answers with the common fields") {
  test::FakeVm vm;
  ApiRouter api(vm);
  auto r = api.handle("PUT", "/api/v1/vm.resize", R"({"size":"512M"})");
  CHECK(r.status == 200);
  CHECK(body(r)["target_bytes"] == 512ull << 20);
  CHECK(body(r)["elapsed_ms"] == 1.5);
  r = api.handle("PUT", "/api/v1/vm.resize", R"({"size":536870912})");
  CHECK(r.status == 200);
  REQUIRE(vm.resizes.size() == 2);
  CHECK(vm.resizes[1] == 512ull << 20);
}

TEST_CASE("every error code is reachable and has its status and a message") {
  test::FakeVm vm;
  ApiRouter api(vm);
  struct Case {
    const char *method, *path, *body, *code;
    unsigned status;
  };
  const Case cases[] = {
      {"PUT", "/api/v1/vm.resize", "{not json", "bad_request", 400},
      {"PUT", "/api/v1/vm.resize", R"({"sice":"1G"})", "bad_request", 400},
      {"PUT", "/api/v1/vm.auto-reclaim", R"({"enabled":"yes"})", "bad_request", 400},
      {"PUT", "/api/v1/vm.auto-reclaim", R"({"enabled":true,"period":"5"})", "bad_request", 400},
      {"PUT", "/api/v1/vm.resize", R"({"size":"2X"})", "bad_size", 400},
      {"PUT", "/api/v1/vm.resize", R"({"size":-1})", "bad_size", 400},
      {"PUT", "/api/v1/vm.resize", R"({"size":[1]})", "bad_size", 400},
      {"GET", "/api/v1/vm.nothing", "", "not_found", 404},
      {"GET", "/api/v2/vm.info", "", "not_found", 404},
      {"GET", "/api/v1//metrics", "", "not_found", 404},
      {"POST", "/api/v1/vm.resize", R"({"size":"1G"})", "method_not_allowed", 405},
      {"GET", "/api/v1/vm.shutdown", "", "method_not_allowed", 405},
      {"PUT", "/api/v1/vm.resize", R"({"size":"128M"})", "below_floor", 422},
      {"PUT", "/api/v1/vm.resize", R"({"size":"2G"})", "above_maximum", 422},
      {"PUT", "/api/v1/vm.resize", R"({"size":1071644672})", "resize_failed", 409},
  };
  for (const auto& c : cases) {
    INFO(c.method << " " << c.path << " " << c.body);
    const auto r = api.handle(c.method, c.path, c.body);
    CHECK(r.status == c.status);
    CHECK(error_code(r) == c.code);
    CHECK(body(r)["error"]["message"].get<std::string>().size() > 0);
    if (r.status == 405) CHECK(!r.allow.empty());
  }
  // A resize that moved memory and stopped short says where it is.
  const auto partial = api.handle("PUT", "/api/v1/vm.resize", R"({"size":1071644672})");
  CHECK(body(partial)["error"]["resize"]["usable_bytes"] == 1ull << 30);
  // payload_too_large: the router refuses a body over the limit too (the server stops reading it).
  const auto big = api.handle("PUT", "/api/v1/vm.resize", std::string(kMaxBodyBytes + 1, ' '));
  CHECK(big.status == 413);
  CHECK(error_code(big) == "payload_too_large");
  // auto-reclaim on, a new period, off; unsupported where the mechanism has no automatic mode.
  CHECK(api.handle("PUT", "/api/v1/vm.auto-reclaim", R"({"enabled":true})").status == 200);
  const auto period = api.handle("PUT", "/api/v1/vm.auto-reclaim", R"({"enabled":true,"period":"2s"})");
  CHECK(period.status == 200);
  CHECK(body(period)["period_ms"] == 2000);
  CHECK(api.handle("PUT", "/api/v1/vm.auto-reclaim", R"({"enabled":false})").status == 200);
  vm.auto_supported = false;
  const auto none = api.handle("PUT", "/api/v1/vm.auto-reclaim", R"({"enabled":true})");
  CHECK(none.status == 501);
  CHECK(error_code(none) == "unsupported");
  // stopping and internal come from the VM and from exceptions; their table entries are checked below.
  CHECK(error_info(ErrorCode::kStopping).http_status == 503);
  CHECK(error_info(ErrorCode::kInternal).http_status == 500);
}

TEST_CASE("a throwing VM becomes an internal error, never an exception") {
  struct Throwing : test::FakeVm {
    VmStatus status() override { throw std::runtime_error("boom"); }
  } vm;
  ApiRouter api(vm);
  const auto r = api.handle("GET", "/api/v1/vm.counters", "");
  CHECK(r.status == 500);
  CHECK(error_code(r) == "internal");
  CHECK_THAT(body(r)["error"]["message"].get<std::string>(), Catch::Contains("boom"));
}

TEST_CASE("continue, shutdown and auto-reclaim reach the VM") {
  test::FakeVm vm;
  ApiRouter api(vm);
  CHECK(api.handle("PUT", "/api/v1/vm.continue", "").status == 204);
  CHECK(api.handle("PUT", "/api/v1/vm.shutdown", "").status == 204);
  CHECK(vm.continues == 1);
  CHECK(vm.shutdowns == 1);
  const auto a = api.handle("PUT", "/api/v1/vm.auto-reclaim", R"({"enabled":true,"period":"2s"})");
  CHECK(a.status == 200);
  CHECK(body(a)["period_ms"] == 2000);
  CHECK(body(api.handle("GET", "/api/v1/vm.info", ""))["auto_reclaim"]["period_ms"] == 2000);
}

TEST_CASE("/metrics is Prometheus text with the counters and the resize histogram") {
  test::FakeVm vm;
  ApiRouter api(vm);
  api.handle("PUT", "/api/v1/vm.resize", R"({"size":"512M"})");
  const auto m = api.handle("GET", "/metrics", "");
  CHECK(m.status == 200);
  CHECK_THAT(m.content_type, Catch::StartsWith("text/plain"));
  CHECK_THAT(m.body, Catch::Contains("\nhvmm_host_rss_bytes 104857600\n"));
  CHECK_THAT(m.body, Catch::Contains("hvmm_guest_free_bytes 536870912\n"));
  CHECK_THAT(m.body, Catch::Contains("hvmm_detail_registered 0\n"));
  CHECK_THAT(m.body, Catch::Contains("hvmm_info{mechanism=\"hyperalloc\"} 1\n"));
  CHECK_THAT(m.body, Catch::Contains("hvmm_vcpu_cpu_seconds{vcpu=\"0\",service=\"false\"} 0.5\n"));
  CHECK_THAT(m.body, Catch::Contains("hvmm_resize_duration_seconds_bucket{le=\"0.005\"} 1\n"));
  CHECK_THAT(m.body, Catch::Contains("hvmm_resize_duration_seconds_count 1\n"));
  // Every sample line is "name[{labels}] number".
  std::istringstream lines(m.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    INFO(line);
    const auto sp = line.rfind(' ');
    REQUIRE(sp != std::string::npos);
    CHECK(line.rfind("hvmm_", 0) == 0);
    CHECK_NOTHROW(std::stod(line.substr(sp + 1)));
  }
}

TEST_CASE("README and api/openapi.yaml list exactly the error codes of api_error.hpp") {
  const std::string readme = read_text("README.md");
  const std::string openapi = read_text("api/openapi.yaml");
  REQUIRE(!readme.empty());
  REQUIRE(!openapi.empty());
  for (const auto& e : kErrors) {
    INFO(e.name);
    CHECK_THAT(readme, Catch::Contains("`" + std::string(e.name) + "`"));
    CHECK_THAT(openapi, Catch::Contains("- " + std::string(e.name) + "\n"));
  }
}
