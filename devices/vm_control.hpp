// What a device may ask of the VM it lives in, and the exit statuses hvmm uses.
#pragma once
#include <string>
#include <string_view>

namespace hvmm {

// hvmm's exit status: the guest's own code (0..255, the built-in kernel keeps its codes below 64),
// or one of these for what the guest cannot report itself.
namespace exit_status {
inline constexpr int kHostError = 120;       // hvmm itself failed (setup, KVM ioctl, ...)
inline constexpr int kGuestException = 121;  // the guest reported a CPU exception or a panic
inline constexpr int kTripleFault = 122;     // KVM_EXIT_SHUTDOWN
inline constexpr int kKvmError = 123;        // KVM internal error / failed entry / unknown exit
inline constexpr int kInterrupted = 130;     // SIGINT / SIGTERM
inline constexpr int kUsage = 2;             // bad command line (before any VM exists)
}  // namespace exit_status

struct VmControl {
  virtual ~VmControl() = default;
  // Stop the VM with this exit status; `message` (may be empty) is printed once on stderr.
  // The first request wins; later ones are ignored.
  virtual void request_exit(int status, std::string message) = 0;
  virtual bool stopping() const = 0;
};

struct ConsoleSink {
  virtual ~ConsoleSink() = default;
  virtual void write(std::string_view bytes) = 0;
};

}  // namespace hvmm
