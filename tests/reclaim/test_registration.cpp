// Registration: a well-formed record built as the guest builds it is accepted; every hostile
// variation is refused with a reason, and the device accepts one registration only.
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include <functional>
#include <string>

#include "reclaim/hyperalloc_host.hpp"
#include "abi/ports.hpp"
#include "guest_zone.hpp"

using namespace hvmm;
using namespace hvmm::reclaim;
using namespace hvmm::reclaim::test;
using abi::hyperalloc::Registration;

namespace {
constexpr int64_t kOk = static_cast<int64_t>(abi::HypercallStatus::kOk);
constexpr int64_t kInvalid = static_cast<int64_t>(abi::HypercallStatus::kInvalid);
}  // namespace

TEST_CASE("a registration built like the guest's is accepted") {
  GuestZone g({{0, 64 * MiB}});
  REQUIRE(g.ok);
  const RegistrationResult r = read_registration(g.mem, kRegGpa);
  REQUIRE(r);
  CHECK(r.error.empty());
  const HostZone& z = *r.zone;
  CHECK(z.base_gpa == 0);
  CHECK(z.huge_frames == 32);
  CHECK(z.view.frames == g.frames);
  CHECK(reinterpret_cast<uint8_t*>(z.view.trees) == g.mem.hva(g.reg.trees_gpa, 1));
  CHECK(reinterpret_cast<uint8_t*>(z.view.children) == g.mem.hva(g.reg.children_gpa, 1));
  CHECK(reinterpret_cast<uint8_t*>(z.view.bitfield) == g.mem.hva(g.reg.bitfield_gpa, 1));

  ZoneState zs(g.mem, z);
  CHECK(zs.stats().excluded == 1);  // frame 0 holds the shared arrays
  CHECK(zs.state(0) == HugeState::kExcluded);
  CHECK(zs.state(1) == HugeState::kInstalled);
}

TEST_CASE("a zone spanning a hole between RAM regions is accepted; the hole is excluded") {
  GuestZone g({{0, 32 * MiB}, {64 * MiB, 32 * MiB}});
  REQUIRE(g.ok);
  const RegistrationResult r = read_registration(g.mem, kRegGpa);
  REQUIRE(r);
  ZoneState zs(g.mem, *r.zone);
  CHECK(zs.stats().huge_frames == 48);
  CHECK(zs.stats().excluded == 1 + 16);
  for (uint64_t i = 16; i < 32; ++i) CHECK(zs.state(i) == HugeState::kExcluded);
  CHECK(zs.state(32) == HugeState::kInstalled);
}

TEST_CASE("hostile registrations are refused") {
  GuestZone g({{0, 64 * MiB}, {128 * MiB, 64 * MiB}});
  REQUIRE(g.ok);
  REQUIRE(validate_registration(g.mem, g.reg));
  const uint64_t ram_end = 192 * MiB;

  const std::vector<std::pair<const char*, std::function<void(Registration&)>>> cases = {
      {"wrong magic", [](Registration& r) { r.magic ^= 1; }},
      {"wrong version", [](Registration& r) { r.version = 2; }},
      {"wrong size", [](Registration& r) { r.size = 64; }},
      {"unknown flags", [](Registration& r) { r.flags = 1; }},
      {"frame shift", [](Registration& r) { r.frame_shift = 21; }},
      {"frames per child", [](Registration& r) { r.frames_per_child = 256; }},
      {"children per tree", [](Registration& r) { r.children_per_tree = 16; }},
      {"child bytes", [](Registration& r) { r.child_bytes = 4; }},
      {"tree bytes", [](Registration& r) { r.tree_bytes = 1; }},
      {"bitfield bytes", [](Registration& r) { r.bitfield_bytes = 128; }},
      {"reserved0", [](Registration& r) { r.reserved0 = 1; }},
      {"reserved1", [](Registration& r) { r.reserved1[2] = 1; }},
      {"zero frames", [](Registration& r) { r.frames = 0; }},
      {"absurd frames", [](Registration& r) { r.frames = ~uint64_t{0}; }},
      {"first_pfn not 2 MiB aligned", [](Registration& r) { r.first_pfn = 1; }},
      {"zone start wraps", [](Registration& r) { r.first_pfn = ~uint64_t{0} << 9; }},
      {"zone end beyond RAM", [&](Registration& r) { r.frames = ram_end / 4096 + 512; }},
      {"zone starts in the hole", [](Registration& r) { r.first_pfn = 64 * MiB / 4096; r.frames = 512; }},
      {"zone ends in the hole", [](Registration& r) { r.frames = 96 * MiB / 4096; }},
      {"zone outside RAM", [](Registration& r) { r.first_pfn = uint64_t{1} << 30; r.frames = 512; }},
      {"trees misaligned", [](Registration& r) { r.trees_gpa += 8; }},
      {"children misaligned", [](Registration& r) { r.children_gpa += 2; }},
      {"bitfield misaligned", [](Registration& r) { r.bitfield_gpa += 32; }},
      {"trees too short", [](Registration& r) { r.trees_len -= 2; }},
      {"children too short", [](Registration& r) { r.children_len = 0; }},
      {"bitfield too short", [](Registration& r) { r.bitfield_len -= 64; }},
      {"absurd length", [](Registration& r) { r.bitfield_len = ~uint64_t{0} - 63; }},
      {"array wraps", [](Registration& r) { r.trees_gpa = ~uint64_t{0} - 63; }},
      {"array wraps through 0", [](Registration& r) { r.children_gpa = ~uint64_t{0} - 63; r.children_len = 128; }},
      {"array outside RAM", [](Registration& r) { r.bitfield_gpa = uint64_t{1} << 40; }},
      {"array in the hole", [](Registration& r) { r.trees_gpa = 100 * MiB; }},
      {"array across the hole", [](Registration& r) { r.bitfield_gpa = 64 * MiB - 64; }},
      {"array past the end of RAM", [&](Registration& r) { r.bitfield_gpa = ram_end - 64; }},
      {"trees overlap children", [](Registration& r) { r.children_gpa = r.trees_gpa; }},
      {"children overlap bitfield", [](Registration& r) { r.children_gpa = r.bitfield_gpa + 64; }},
      {"trees overlap bitfield (long length)", [](Registration& r) { r.trees_len = r.bitfield_gpa - r.trees_gpa + 1; }},
  };
  for (const auto& [name, mutate] : cases) {
    INFO(name);
    Registration r = g.reg;
    mutate(r);
    const RegistrationResult res = validate_registration(g.mem, r);
    CHECK_FALSE(res);
    CHECK_FALSE(res.error.empty());
  }
  CHECK_FALSE(read_registration(g.mem, ram_end - 64));       // record crosses the end of RAM
  CHECK_FALSE(read_registration(g.mem, ~uint64_t{0} - 8));   // record address wraps
  CHECK_FALSE(read_registration(g.mem, 100 * MiB));          // record in the hole
}

TEST_CASE("the HyperAlloc host accepts one registration and refuses a second") {
  GuestZone g({{0, 64 * MiB}});
  REQUIRE(g.ok);
  HyperallocHost host(g.mem, {});
  CHECK(host.zone() == nullptr);
  CHECK_FALSE(host.resize(32 * MiB).has_value());  // nothing to resize yet

  Registration bad = g.reg;
  bad.magic = 0;
  REQUIRE(g.mem.write_obj(0x2000, bad));
  CHECK_FALSE(host.register_zone(0x2000));
  CHECK_FALSE(host.register_zone(~uint64_t{0}));
  CHECK(host.zone() == nullptr);

  CHECK(host.register_zone(kRegGpa));
  REQUIRE(host.zone() != nullptr);
  ZoneState* first = host.zone();
  CHECK_FALSE(host.register_zone(kRegGpa));  // second registration, even an identical one
  CHECK(host.zone() == first);
  const HyperallocStatus s = host.status();
  CHECK(s.registered);
  CHECK(s.registration_refusals == 3);
  CHECK(s.zone.ram_bytes == 64 * MiB);
}

TEST_CASE("the HyperAlloc host refuses installs before registration and arrays over protected memory") {
  GuestZone g({{0, 64 * MiB}});
  REQUIRE(g.ok);
  HyperallocHost host(g.mem, {{0, g.reg.trees_gpa + 1}});  // the kernel "image" covers the trees
  host.install(3);
  CHECK(host.status().installs_before_registration == 1);
  CHECK_FALSE(host.register_zone(kRegGpa));
  CHECK(host.zone() == nullptr);
}

TEST_CASE("auto-reclaim started before registration waits for it, then reclaims") {
  GuestZone g({{0, 64 * MiB}});
  REQUIRE(g.ok);
  HyperallocHost host(g.mem, {}, {std::chrono::milliseconds(5), 1, 8});
  host.start_auto(std::chrono::milliseconds(5));  // the VMM's thread, before any vCPU runs
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK_FALSE(host.status().auto_reclaim.has_value());  // no zone, no policy yet
  REQUIRE(host.register_zone(kRegGpa));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // A scan counts itself when it ends, after its batches were reclaimed: wait for both.
  auto done = [&] {
    const HyperallocStatus s = host.status();
    return s.zone.soft > 0 && s.auto_reclaim && s.auto_reclaim->stats.scans > 0;
  };
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const HyperallocStatus s = host.status();
  REQUIRE(s.auto_reclaim.has_value());
  CHECK(s.auto_reclaim->stats.scans > 0);
  CHECK(s.zone.soft > 0);  // the guest's free huge frames were taken back
  host.stop();
  host.stop();  // idempotent
}

TEST_CASE("stopping the HyperAlloc host before registration ends its auto-reclaim thread") {
  GuestZone g({{0, 64 * MiB}});
  REQUIRE(g.ok);
  HyperallocHost host(g.mem, {});
  host.start_auto(std::chrono::milliseconds(5));
  host.stop();
  CHECK(host.register_zone(kRegGpa));  // the zone still works; only the policy is off
  CHECK_FALSE(host.status().auto_reclaim.has_value());
}
