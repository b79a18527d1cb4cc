#include <catch2/catch.hpp>

#include "fake_handler.hpp"
#include "vmm/api/protocol.hpp"

using hvmm::api::handle_request;
using hvmm::api::test::FakeHandler;
using nlohmann::json;

namespace {
std::string error_of(const json& r) {
  REQUIRE(r.is_object());
  REQUIRE(r.at("ok") == false);
  REQUIRE(r.at("error").is_string());
  return r.at("error").get<std::string>();
}
}  // namespace

TEST_CASE("protocol: the three commands reach the handler") {
  FakeHandler h;
  const json st = handle_request(R"({"cmd":"status"})", h);
  CHECK(st.at("ok") == true);  // added because the handler's object has none
  CHECK(st.at("state") == "running");
  CHECK(h.status_calls == 1);

  const json rs = handle_request(R"({"cmd":"resize","size":"2G"})", h);
  CHECK(rs.at("ok") == true);
  CHECK(rs.at("elapsed_ms") == 12.345);
  const json rn = handle_request(R"({"cmd":"resize","size":4096})", h);
  CHECK(rn.at("ok") == true);
  REQUIRE(h.resizes == std::vector<uint64_t>{2ull << 30, 4096});

  const json failed = handle_request(R"({"cmd":"resize","size":0})", h);
  CHECK(error_of(failed) == "cannot shrink to zero");

  CHECK(handle_request(R"({"cmd":"shutdown"})", h).at("ok") == true);
  CHECK(h.shutdowns == 1);
}

TEST_CASE("protocol: bad requests become errors and never reach the handler") {
  FakeHandler h;
  CHECK(error_of(handle_request("", h)) == "malformed JSON request");
  CHECK(error_of(handle_request("not json", h)) == "malformed JSON request");
  CHECK(error_of(handle_request(R"({"cmd":"status")", h)) == "malformed JSON request");
  CHECK(error_of(handle_request(std::string_view("\0\xff\xfe{", 4), h)) == "malformed JSON request");
  CHECK(error_of(handle_request("{\"cmd\":\"\xff\"}", h)) == "malformed JSON request");  // invalid UTF-8
  CHECK(error_of(handle_request("[1,2]", h)).find("JSON object") != std::string::npos);
  CHECK(error_of(handle_request("42", h)).find("JSON object") != std::string::npos);
  CHECK(error_of(handle_request("{}", h)).find("\"cmd\"") != std::string::npos);
  CHECK(error_of(handle_request(R"({"cmd":5})", h)).find("\"cmd\"") != std::string::npos);
  CHECK(error_of(handle_request(R"({"cmd":"fly"})", h)).find("unknown command 'fly'") != std::string::npos);
  CHECK(error_of(handle_request(R"({"cmd":"resize"})", h)).find("needs \"size\"") != std::string::npos);
  CHECK(error_of(handle_request(R"({"cmd":"resize","size":-5})", h)) == "negative size");
  CHECK(error_of(handle_request(R"({"cmd":"resize","size":1.5})", h)).find("\"size\" must be") != std::string::npos);
  CHECK(error_of(handle_request(R"({"cmd":"resize","size":null})", h)).find("\"size\" must be") != std::string::npos);
  CHECK(error_of(handle_request(R"({"cmd":"resize","size":"lots"})", h)).find("number") != std::string::npos);
  CHECK(error_of(handle_request(R"({"cmd":"resize","size":"99999999999T"})", h)).find("too large") !=
        std::string::npos);
  // Deep nesting must not blow the stack.
  CHECK(error_of(handle_request(std::string(30000, '['), h)) == "malformed JSON request");
  CHECK(error_of(handle_request(std::string(30000, '[') + std::string(30000, ']'), h)).find("JSON object") !=
        std::string::npos);
  CHECK(h.resizes.empty());
  CHECK(h.status_calls == 0);
}

TEST_CASE("protocol: a throwing handler is reported, not propagated") {
  FakeHandler h;
  h.throw_on_status = true;
  CHECK(error_of(handle_request(R"({"cmd":"status"})", h)) == "internal error: boom");
}

TEST_CASE("protocol: to_line is one line even with invalid UTF-8 in a string") {
  const std::string line = hvmm::api::to_line(hvmm::api::error_response("bad \xff byte\nsecond"));
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  CHECK(json::parse(line).at("ok") == false);
}
