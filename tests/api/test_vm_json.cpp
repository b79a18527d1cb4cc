// The control API's reply schema (README, "The control API"): the same top-level fields for every
// mechanism, the mechanism's extras under `detail`, and the resize reply's common fields.
#include <catch2/catch.hpp>

#include "vmm/api/vm_json.hpp"
#include "vmm/mechanisms/virtio_mem.hpp"

using namespace hvmm;
using namespace hvmm::api;

namespace {

VmStatus base_status(MechanismStatus m, const char* name) {
  VmStatus s;
  s.mechanism = name;
  s.reclaim = std::move(m);
  s.guest_total_bytes = 8ull << 30;
  s.host_rss_bytes = 123;
  s.vcpus = 2;
  s.vcpu_cpu = {{0, false, 1.5}, {2, true, 0.25}};
  return s;
}

}  // namespace

TEST_CASE("every mechanism's status has the same top-level fields, extras under detail") {
  MechanismStatus none{{8ull << 30, 8ull << 30, std::nullopt, {}}, NoReclaimStatus{}};
  MechanismStatus balloon{{2ull << 30, 2ull << 30, 1ull << 30, {"balloon actual 4 TiB exceeds the VM's 8 GiB of RAM"}},
                          BalloonMechanismStatus{}};
  MechanismStatus hyper{{6ull << 30, 6ull << 30, 5ull << 30, {}}, HyperallocMechanismStatus{}};
  MechanismStatus vmem{{3ull << 30, 3ull << 30, 1ull << 30, {}}, VirtioMemMechanismStatus{}};
  for (auto& [m, name] : std::vector<std::pair<MechanismStatus, const char*>>{
           {none, "none"}, {balloon, "balloon"}, {hyper, "hyperalloc"}, {vmem, "virtio-mem"}}) {
    INFO(name);
    const auto j = to_json(base_status(m, name));
    for (const char* k : {"mechanism", "usable_bytes", "target_bytes", "guest_free_bytes", "guest_lies", "detail",
                          "guest_total_bytes", "host_rss_bytes", "vcpus", "vcpu_cpu", "hypercalls", "unhandled_accesses"})
      CHECK(j.contains(k));
    CHECK(j["mechanism"] == name);
    CHECK(j["usable_bytes"] == m.common.usable_bytes);
    CHECK(j["detail"].is_object());
    CHECK_FALSE(j.contains("ok"));  // the protocol adds it
  }
  CHECK(to_json(base_status(none, "none"))["guest_free_bytes"].is_null());
  CHECK(to_json(base_status(balloon, "balloon"))["guest_lies"].size() == 1);
  CHECK(to_json(base_status(balloon, "balloon"))["detail"].contains("balloon_actual_bytes"));
  CHECK(to_json(base_status(hyper, "hyperalloc"))["detail"]["registered"] == false);
  const auto cpu = to_json(base_status(none, "none"))["vcpu_cpu"];
  REQUIRE(cpu.size() == 2);
  CHECK(cpu[1]["service"] == true);
  CHECK(cpu[1]["vcpu"] == 2);
}

TEST_CASE("hyperalloc status: install latency in microseconds") {
  HyperallocMechanismStatus h;
  h.host.registered = true;
  h.host.zone.install_latency_ns = {.count = 3, .p50 = 150'000, .p99 = 900'000, .max = 1'234'567};
  const auto j = to_json(MechanismDetail{h});
  REQUIRE(j.contains("install_latency_us"));
  CHECK(j["install_latency_us"]["count"] == 3);
  CHECK(j["install_latency_us"]["p50"] == 150.0);
  CHECK(j["install_latency_us"]["p99"] == 900.0);
  CHECK(j["install_latency_us"]["max"] == 1234.567);
}

TEST_CASE("a resize reply carries the common fields, a refusal only the reason") {
  ResizeOutcome done;
  done.ok = true;
  done.elapsed_ms = 1.5;
  done.target_bytes = 2ull << 30;
  done.usable_bytes = 2ull << 30;
  done.moved_bytes = 6ull << 30;
  const auto j = to_json(done);
  CHECK(j["ok"] == true);
  CHECK_FALSE(j.contains("error"));
  CHECK(j["moved_bytes"] == 6ull << 30);
  CHECK(j["elapsed_ms"] == 1.5);

  const auto refused = to_json(ResizeOutcome::failure("the guest's balloon driver is not running (yet)"));
  CHECK(refused["ok"] == false);
  CHECK(refused["error"] == "the guest's balloon driver is not running (yet)");
  CHECK_FALSE(refused.contains("usable_bytes"));
}

TEST_CASE("virtio-mem auto policy: the reference's steps and bounds") {
  constexpr uint64_t G = 1ull << 30, step = G / 2, lo = G, hi = 8 * G;
  auto t = [&](uint64_t usable, uint64_t free) { return VirtioMemMechanism::auto_target(usable, free, step, lo, hi); };
  CHECK(t(4 * G, step / 4) == 5 * G);          // free < step/2: grow by 2 steps
  CHECK(t(4 * G, step * 3 / 4) == 4 * G + step);  // free < step: grow by 1
  CHECK(t(4 * G, step + 1) == 4 * G);            // between step and 2 steps: stay
  CHECK(t(4 * G, 3 * step) == 4 * G - step);     // free > 2 steps: shrink by 1
  CHECK(t(lo, 4 * G) == lo);                     // never below VM/8
  CHECK(t(hi - step, 0) == hi);                  // never above the VM
  CHECK(t(step / 2, 4 * G) == lo);               // a usable size below the bound is lifted to it
}
