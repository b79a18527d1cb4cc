// A scripted VmApi for the control API's tests and fuzz target: records calls; resize() refuses
// targets below 256 MiB (below_floor), fails for 1 GiB - 2 MiB (resize_failed, after moving memory),
// and can be made to block until release().
#pragma once
#include <stdlib.h>

#include <condition_variable>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <mutex>
#include <vector>

#include "vmm/api/vm_api.hpp"

namespace hvmm::api::test {

struct FakeVm : VmApi {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint64_t> resizes;
  int shutdowns = 0, continues = 0;
  bool block_resize = false;
  int resizes_waiting = 0;
  std::optional<uint64_t> auto_ms;
  bool auto_supported = true;  // false: like --reclaim none

  VmStatus status() override {
    VmStatus s;
    s.mechanism = "hyperalloc";
    s.reclaim.common = {1ull << 30, 1ull << 30, 512ull << 20, {}};
    s.reclaim.detail = HyperallocMechanismStatus{};
    s.guest_total_bytes = 1ull << 30;
    s.host_rss_bytes = 100ull << 20;
    s.vcpus = 2;
    s.vcpu_cpu = {{0, false, 0.5}, {1, false, 0.25}};
    return s;
  }
  VmInfo info() override {
    VmInfo i;
    i.mechanism = "hyperalloc";
    i.mem_bytes = i.boot_mem_bytes = 1ull << 30;
    i.mem_min_bytes = 256ull << 20;
    i.vcpus = 2;
    i.kernel = "built-in";
    i.state = "running";
    std::lock_guard lock(mu);
    i.auto_reclaim_period_ms = auto_ms;
    return i;
  }
  ResizeOutcome resize(uint64_t target) override {
    std::unique_lock lock(mu);
    ++resizes_waiting;
    cv.notify_all();
    cv.wait(lock, [&] { return !block_resize; });
    --resizes_waiting;
    resizes.push_back(target);
    if (target < (256ull << 20)) return ResizeOutcome::failure("below the floor", ErrorCode::kBelowFloor);
    if (target > (1ull << 30)) return ResizeOutcome::failure("beyond the maximum", ErrorCode::kAboveMaximum);
    ResizeOutcome r;
    r.elapsed_ms = 1.5;
    r.target_bytes = target;
    r.usable_bytes = target;
    r.moved_bytes = (1ull << 30) - target;
    if (target == (1ull << 30) - (2ull << 20)) {
      r.error = "reached 1.0 GiB of the target: the guest uses the rest";
      r.usable_bytes = 1ull << 30;
      return r;
    }
    r.ok = true;
    return r;
  }
  void shutdown() override {
    std::lock_guard lock(mu);
    ++shutdowns;
  }
  void continue_guest() override {
    std::lock_guard lock(mu);
    ++continues;
  }
  AutoReclaimOutcome set_auto_reclaim(const AutoReclaimRequest& req) override {
    std::lock_guard lock(mu);
    AutoReclaimOutcome o;
    if (!auto_supported) {
      o.code = ErrorCode::kUnsupported;
      o.error = "this mechanism has no automatic mode";
      return o;
    }
    if (req.enabled) auto_ms = req.period ? uint64_t(req.period->count()) : 500;
    else auto_ms.reset();
    o.ok = true;
    o.period_ms = auto_ms;
    return o;
  }

  void wait_until_resize_entered() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return resizes_waiting > 0; });
  }
  void release() {
    std::lock_guard lock(mu);
    block_resize = false;
    cv.notify_all();
  }
};

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/hvmm-api-XXXXXX";
    if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    path = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace hvmm::api::test
