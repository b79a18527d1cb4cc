// What the KVM integration tests need around the hvmm binary: where it is, whether /dev/kvm can be
// used here, running it with a hard timeout, and small checks shared by the test files.
#pragma once
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "child_process.hpp"

namespace hvmm::testing {

// The hvmm binary under test: $HVMM_BIN if set, else the one this test was built with.
std::string hvmm_binary();
// True if /dev/kvm can be opened read-write by this process.
bool kvm_available();

// Default hard limit for one hvmm run; generous for a 2-core nested-KVM box, far below CTest's.
inline constexpr std::chrono::milliseconds kRunTimeout{20'000};

// Runs `hvmm ARGS...` (args exclude the binary); the harness kills it at `timeout`.
ProcessResult run_hvmm(const std::vector<std::string>& args, std::chrono::milliseconds timeout = kRunTimeout,
                       const std::function<void(ChildProcess&)>& while_running = {});

// Number of '\n'-terminated lines; an unterminated tail counts as a line too.
size_t count_lines(const std::string& text);

// A file in a fresh private temp directory, removed (with the directory) on destruction.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& contents, unsigned mode = 0644);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_, path_;
};

}  // namespace hvmm::testing

// First statement of every test that boots a VM: on a machine without usable KVM the test says so in
// one line and passes (it has nothing to check there).
#define HVMM_REQUIRE_KVM()                                  \
  do {                                                      \
    if (!::hvmm::testing::kvm_available()) {                \
      WARN("SKIPPED: /dev/kvm not available");              \
      return;                                               \
    }                                                       \
  } while (0)
