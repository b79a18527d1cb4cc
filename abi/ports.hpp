// The port-I/O ABI between the built-in guest kernel and hvmm. Shared by both sides; freestanding.
//
// Every port takes a 32-bit `out`. Hypercalls take the guest-physical address of a HypercallRequest
// (it must lie below 4 GiB; the guest keeps one per CPU in its image). One exit per request.
#pragma once
#include <cstddef>
#include <cstdint>

namespace hvmm::abi {

inline constexpr uint16_t kPortSerial = 0x3f8;      // 16550 UART, 8 ports
inline constexpr uint16_t kPortExit = 0x501;        // out: exit code (0..255) of the whole VM
inline constexpr uint16_t kPortHypercall = 0x510;   // outl: GPA of a HypercallRequest
inline constexpr uint16_t kPortHyperallocInstall = 0x520;  // outl: huge-frame index to install

enum class Hypercall : uint32_t {
  kConsoleWrite = 1,  // a0 = GPA, a1 = length: write bytes to the console (a whole line at a time)
  kSleep = 2,         // a0 = nanoseconds: block this vCPU
  kWait = 3,          // a0 = GPA of a u32, a1 = expected value, a2 = timeout ns: block while *a0 == a1
  kWake = 4,          // wakes every vCPU blocked in kWait (a0 is not used: each waiter re-checks its word)
  kPanic = 5,         // a0 = vector, a1 = error code, a2 = rip, a3 = fault address (cr2): report and stop
  kHyperallocRegister = 6,  // a0 = GPA of a hyperalloc::Registration
  kNow = 7,           // ret = host monotonic nanoseconds (for benchmarks)
  kBarrier = 8,       // block until the host grants a `continue` (hvmm ctl continue); one per call
  kVirtioMemFree = 9,  // a0 = the guest's free bytes: the virtio-mem driver's report (about once a second)
};
inline constexpr uint32_t kHypercallMax = 9;  // the highest number above: keep it in step

enum class HypercallStatus : int64_t { kOk = 0, kInvalid = -1, kUnsupported = -2, kTimedOut = -3 };

struct HypercallRequest {
  uint32_t nr;       // a Hypercall
  uint32_t reserved;
  uint64_t args[6];
  int64_t ret;       // written by the host
};
static_assert(sizeof(HypercallRequest) == 64);
static_assert(offsetof(HypercallRequest, args) == 8);
static_assert(offsetof(HypercallRequest, ret) == 56);

// Panic codes (arguments of kPanic when the guest kernel itself, not the CPU, fails).
inline constexpr uint64_t kPanicSoftware = 0x100;  // a1 = GPA of a NUL-terminated message

}  // namespace hvmm::abi
