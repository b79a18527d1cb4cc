#include "vmm/api/http_api.hpp"

#include <fmt/format.h>

#include <exception>
#include <optional>

#include <nlohmann/json.hpp>

#include "vmm/api/metrics.hpp"
#include "vmm/api/size_parse.hpp"
#include "vmm/api/version.hpp"
#include "vmm/api/vm_json.hpp"

namespace hvmm::api {
namespace {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpReply reply(unsigned status, std::string body, std::string content_type = "application/json") {
  HttpReply r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}
HttpReply ok_json(const json& j) { return reply(200, dump(j) + "\n"); }
HttpReply no_content() { return reply(204, {}, {}); }

// Client-controlled text in a message: bounded, so an error reply never grows with the request.
std::string clip(std::string_view s) { return std::string(s.substr(0, 64)) + (s.size() > 64 ? "..." : ""); }

// The request body as a JSON object; an error reply otherwise.
std::optional<json> body_object(std::string_view body, const char* example, HttpReply* err) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *err = error_reply(ErrorCode::kBadRequest, fmt::format("the body must be a JSON object like {}", example));
    return std::nullopt;
  }
  return j;
}

struct Endpoint {
  std::string_view path;    // after kApiPrefix, or the full path for /metrics
  std::string_view method;
};
constexpr Endpoint kEndpoints[] = {
    {"vmm.ping", "GET"},      {"vm.info", "GET"},     {"vm.counters", "GET"},  {"vm.resize", "PUT"},
    {"vm.auto-reclaim", "PUT"}, {"vm.continue", "PUT"}, {"vm.shutdown", "PUT"}, {"/metrics", "GET"},
};

}  // namespace

HttpReply error_reply(ErrorCode code, std::string message) {
  const ErrorInfo& e = error_info(code);
  return reply(e.http_status, dump(json{{"error", {{"code", e.name}, {"message", std::move(message)}}}}) + "\n");
}

void ResizeHistogram::observe(double seconds) {
  std::lock_guard lock(mu_);
  size_t i = 0;
  while (i < kBoundsSeconds.size() && seconds > kBoundsSeconds[i]) ++i;
  if (i < buckets_.size()) ++buckets_[i];
  ++count_;
  sum_ += seconds;
}

std::string ResizeHistogram::prometheus() const {
  std::lock_guard lock(mu_);
  std::string out =
      "# HELP hvmm_resize_duration_seconds Duration of the resizes requested through the API.\n"
      "# TYPE hvmm_resize_duration_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBoundsSeconds.size(); i++) {
    cumulative += buckets_[i];
    out += fmt::format("hvmm_resize_duration_seconds_bucket{{le=\"{}\"}} {}\n", kBoundsSeconds[i], cumulative);
  }
  out += fmt::format("hvmm_resize_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", count_);
  out += fmt::format("hvmm_resize_duration_seconds_sum {}\n", sum_);
  out += fmt::format("hvmm_resize_duration_seconds_count {}\n", count_);
  return out;
}

HttpReply ApiRouter::handle(std::string_view method, std::string_view path, std::string_view body) {
  try {
    if (body.size() > kMaxBodyBytes)
      return error_reply(ErrorCode::kPayloadTooLarge,
                         fmt::format("the body has {} bytes; at most {}", body.size(), kMaxBodyBytes));
    return route(method, path, body);
  } catch (const std::exception& e) {
    return error_reply(ErrorCode::kInternal, fmt::format("internal error: {}", e.what()));
  } catch (...) {
    return error_reply(ErrorCode::kInternal, "internal error");
  }
}

HttpReply ApiRouter::route(std::string_view method, std::string_view path, std::string_view body) {
  // The query string is not used by any endpoint; ignore it rather than 404 on "?x".
  if (const size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  std::string_view name = path;
  if (path.starts_with(kApiPrefix)) name = path.substr(kApiPrefix.size());
  const Endpoint* ep = nullptr;
  for (const auto& e : kEndpoints)
    if (e.path == name && (e.path.starts_with('/') == (name == path))) ep = &e;
  if (!ep)
    return error_reply(ErrorCode::kNotFound,
                       fmt::format("no endpoint {}; see GET /api/v1/vmm.ping and api/openapi.yaml", clip(path)));
  if (method != ep->method) {
    HttpReply r = error_reply(ErrorCode::kMethodNotAllowed,
                              fmt::format("{} takes {}, not {}", clip(path), ep->method, clip(method)));
    r.allow = ep->method;
    return r;
  }

  if (name == "vmm.ping")
    return ok_json({{"version", version()}, {"build", build()}, {"api", kApiVersion}});
  if (name == "vm.info") return ok_json(to_json(vm_.info()));
  if (name == "vm.counters") return ok_json(to_json(vm_.status()));
  if (name == "vm.resize") return resize(body);
  if (name == "vm.auto-reclaim") return auto_reclaim(body);
  if (name == "vm.continue") {
    vm_.continue_guest();
    return no_content();
  }
  if (name == "vm.shutdown") {
    vm_.shutdown();
    return no_content();
  }
  return metrics();
}

HttpReply ApiRouter::resize(std::string_view body) {
  HttpReply err;
  const auto req = body_object(body, R"({"size":"2G"})", &err);
  if (!req) return err;
  const auto it = req->find("size");
  uint64_t target = 0;
  if (it == req->end())
    return error_reply(ErrorCode::kBadRequest, R"(vm.resize needs "size" (e.g. {"size":"2G"} or a number of bytes))");
  if (it->is_string()) {
    std::string why;
    const auto size = parse_size(it->get_ref<const std::string&>(), &why);
    if (!size) return error_reply(ErrorCode::kBadSize, why);
    target = *size;
  } else if (it->is_number_unsigned()) {
    target = it->get<uint64_t>();
  } else if (it->is_number_integer()) {
    return error_reply(ErrorCode::kBadSize, "negative size");
  } else {
    return error_reply(ErrorCode::kBadSize, R"("size" must be a string like "2G" or a whole number of bytes)");
  }
  const ResizeOutcome r = vm_.resize(target);
  if (r.elapsed_ms) resize_hist_.observe(*r.elapsed_ms / 1000.0);
  if (!r.ok) {
    HttpReply reply = error_reply(r.code, r.error);
    if (r.elapsed_ms) {  // it moved memory before it stopped: say where it is now
      json j = json::parse(reply.body);
      json figures = to_json(r);
      figures.erase("ok");
      figures.erase("error");
      j["error"]["resize"] = figures;
      reply.body = dump(j) + "\n";
    }
    return reply;
  }
  json j = to_json(r);
  j.erase("ok");
  return ok_json(j);
}

HttpReply ApiRouter::auto_reclaim(std::string_view body) {
  HttpReply err;
  const auto req = body_object(body, R"({"enabled":true,"period":"500ms"})", &err);
  if (!req) return err;
  AutoReclaimRequest a;
  const auto en = req->find("enabled");
  if (en == req->end() || !en->is_boolean())
    return error_reply(ErrorCode::kBadRequest, R"(vm.auto-reclaim needs a boolean "enabled")");
  a.enabled = en->get<bool>();
  if (const auto p = req->find("period"); p != req->end()) {
    if (!p->is_string()) return error_reply(ErrorCode::kBadRequest, R"("period" must be a string like "500ms" or "2s")");
    std::string why;
    a.period = parse_period(p->get_ref<const std::string&>(), &why);
    if (!a.period) return error_reply(ErrorCode::kBadRequest, why);
    if (!a.enabled) return error_reply(ErrorCode::kBadRequest, R"("period" makes no sense with "enabled":false)");
  }
  const AutoReclaimOutcome r = vm_.set_auto_reclaim(a);
  if (!r.ok) return error_reply(r.code, r.error);
  return ok_json(to_json(r));
}

HttpReply ApiRouter::metrics() {
  return reply(200, prometheus_metrics(to_json(vm_.status())) + resize_hist_.prometheus(),
               "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace hvmm::api
