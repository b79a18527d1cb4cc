// Test doubles for the control API: a scripted ControlHandler and a temporary directory.
#pragma once
#include <stdlib.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "vmm/api/control.hpp"

namespace hvmm::api::test {

// Records calls. resize(0) fails; resize() can be made to block until release() is called.
struct FakeHandler : ControlHandler {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint64_t> resizes;
  int status_calls = 0;
  int shutdowns = 0;
  bool block_resize = false;
  int resizes_waiting = 0;
  bool throw_on_status = false;

  nlohmann::json status() override {
    std::lock_guard lock(mu);
    ++status_calls;
    if (throw_on_status) throw std::runtime_error("boom");
    return {{"ram_bytes", 1ull << 30}, {"guest_used_bytes", 123456}, {"state", "running"}};
  }
  nlohmann::json resize(uint64_t target) override {
    std::unique_lock lock(mu);
    ++resizes_waiting;
    cv.notify_all();
    cv.wait(lock, [&] { return !block_resize; });
    --resizes_waiting;
    resizes.push_back(target);
    if (target == 0) return {{"ok", false}, {"error", "cannot shrink to zero"}};
    return {{"ok", true}, {"elapsed_ms", 12.345}, {"size_bytes", target}};
  }
  nlohmann::json shutdown() override {
    std::lock_guard lock(mu);
    ++shutdowns;
    return {{"ok", true}};
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
