// libFuzzer target: the control API's request handling (vmm/api/http_api.cpp) with arbitrary
// method, path and body, against a fake VM. Input: method '\n' path '\n' body. Every reply must be
// an HTTP status with JSON (or, for /metrics, text) that names an error code from api_error.hpp.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fake_vm.hpp"
#include "vmm/api/http_api.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static hvmm::api::test::FakeVm vm;
  static hvmm::api::ApiRouter router(vm);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t a = in.find('\n');
  const std::string_view method = in.substr(0, a);
  std::string_view rest = a == std::string_view::npos ? std::string_view{} : in.substr(a + 1);
  const size_t b = rest.find('\n');
  const std::string_view path = rest.substr(0, b);
  const std::string_view body = b == std::string_view::npos ? std::string_view{} : rest.substr(b + 1);
  const hvmm::api::HttpReply r = router.handle(method, path, body);
  if (r.status < 200 || r.status > 599) std::abort();
  if (r.status >= 400) {  // {"error":{"code":known,"message":string}}
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("error") || !j["error"]["code"].is_string() || !j["error"]["message"].is_string())
      std::abort();
    bool known = false;
    for (const auto& e : hvmm::api::kErrors) known |= j["error"]["code"] == e.name && e.http_status == r.status;
    if (!known) std::abort();
  } else if (r.content_type == "application/json" && !r.body.empty()) {
    if (nlohmann::json::parse(r.body, nullptr, false).is_discarded()) std::abort();
  }
  return 0;
}
