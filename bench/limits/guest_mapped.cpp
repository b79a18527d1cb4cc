#include "bench/limits/guest_mapped.hpp"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "bench/limits/thp_mapping.hpp"

namespace hvmm::limits {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kGiB = double(1ull << 30);
constexpr uint64_t kGiBBytes = 1ull << 30;

// Guest-physical layout of the probe VM: a small low slot with the GDT, page tables and code, and
// the measured memory from 4 GiB up (above KVM's TSS pages below 4 GiB), identity-mapped with 2 MiB
// pages.
constexpr uint64_t kGdt = 0x500, kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kCode = 0x100000;
constexpr uint64_t kLowBytes = 2ull << 20;
constexpr uint64_t kMeasuredGpa = 4 * kGiBBytes;
constexpr uint16_t kDonePort = 0x10;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

class Fd {
 public:
  explicit Fd(int fd, const char* what) : fd_(fd) {
    if (fd_ < 0) fail(what);
  }
  ~Fd() { ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

kvm_segment flat(uint16_t sel, uint8_t type, bool code) {
  kvm_segment s{};
  s.limit = 0xffffffff;
  s.selector = sel;
  s.type = type;
  s.present = 1;
  s.s = 1;
  s.g = 1;
  s.l = code;
  s.db = !code;
  return s;
}

// One VM, one vCPU. touch() runs the guest loop over the measured slot until it reports done.
class ProbeVm {
 public:
  ProbeVm(const ThpMapping& measured) : low_(kLowBytes), measured_(measured) {
    const uint64_t top_gib = (kMeasuredGpa + measured.size() + kGiBBytes - 1) / kGiBBytes;
    if (top_gib > 512 || kPd + 0x1000 * top_gib > kCode) throw std::runtime_error("guest-mapped probe: too much memory");
    auto put = [&](uint64_t gpa, uint64_t v) { std::memcpy(low_.data() + gpa, &v, 8); };
    // GDT: null, null, 64-bit code (0x10), data (0x18): the same descriptors hvmm boots with.
    put(kGdt + 0x10, 0x00af9b000000ffffULL);
    put(kGdt + 0x18, 0x00cf93000000ffffULL);
    put(kPml4, kPdpt | 7);
    for (uint64_t g = 0; g < top_gib; g++) {
      put(kPdpt + 8 * g, (kPd + 0x1000 * g) | 7);
      for (uint64_t i = 0; i < 512; i++) put(kPd + 0x1000 * g + 8 * i, (g * kGiBBytes + i * kHuge) | 0x87);
    }
    // loop: mov byte [rax], 1; add rax, rcx; cmp rax, rbx; jb loop; out 0x10, al; hlt
    const uint8_t code[] = {0xc6, 0x00, 0x01, 0x48, 0x01, 0xc8, 0x48, 0x39, 0xd8, 0x72, 0xf5, 0xe6, kDonePort, 0xf4};
    std::memcpy(low_.data() + kCode, code, sizeof code);

    if (ioctl(kvm_.get(), KVM_GET_API_VERSION, 0) != KVM_API_VERSION) fail("KVM_GET_API_VERSION");
    vm_ = std::make_unique<Fd>(ioctl(kvm_.get(), KVM_CREATE_VM, 0), "KVM_CREATE_VM");
    if (ioctl(vm_->get(), KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) fail("KVM_SET_TSS_ADDR");
    slot(0, 0, kLowBytes, low_.data());
    slot(1, kMeasuredGpa, measured.size(), measured.data());
    vcpu_ = std::make_unique<Fd>(ioctl(vm_->get(), KVM_CREATE_VCPU, 0), "KVM_CREATE_VCPU");
    const int run_size = ioctl(kvm_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size <= 0) fail("KVM_GET_VCPU_MMAP_SIZE");
    run_size_ = size_t(run_size);
    void* p = mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_->get(), 0);
    if (p == MAP_FAILED) fail("mmap of kvm_run");
    run_ = static_cast<kvm_run*>(p);
    set_cpuid();
    kvm_sregs s{};
    if (ioctl(vcpu_->get(), KVM_GET_SREGS, &s) < 0) fail("KVM_GET_SREGS");
    s.cs = flat(0x10, 0xb, true);
    s.ds = s.es = s.fs = s.gs = s.ss = flat(0x18, 0x3, false);
    s.gdt.base = kGdt;
    s.gdt.limit = 4 * 8 - 1;
    s.cr0 = 0x80010033;  // PG WP NE ET MP PE
    s.cr3 = kPml4;
    s.cr4 = 0x620;       // OSXMMEXCPT OSFXSR PAE
    s.efer = 0x501;      // LMA LME SCE
    if (ioctl(vcpu_->get(), KVM_SET_SREGS, &s) < 0) fail("KVM_SET_SREGS");
  }
  ~ProbeVm() {
    if (run_) munmap(run_, run_size_);
  }
  ProbeVm(const ProbeVm&) = delete;
  ProbeVm& operator=(const ProbeVm&) = delete;

  // The vCPU writes one byte per 2 MiB of the measured slot; returns when it reports done.
  void touch() {
    kvm_regs r{};
    r.rip = kCode;
    r.rax = kMeasuredGpa;
    r.rbx = kMeasuredGpa + measured_.size();
    r.rcx = kHuge;
    r.rflags = 2;
    if (ioctl(vcpu_->get(), KVM_SET_REGS, &r) < 0) fail("KVM_SET_REGS");
    for (;;) {
      if (ioctl(vcpu_->get(), KVM_RUN, 0) < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        fail("KVM_RUN");
      }
      if (run_->exit_reason == KVM_EXIT_IO && run_->io.port == kDonePort) return;
      kvm_regs now{};
      ioctl(vcpu_->get(), KVM_GET_REGS, &now);
      std::string what = "guest-mapped probe: unexpected exit " + std::to_string(run_->exit_reason) + " at rip " +
                         std::to_string(now.rip) + ", rax " + std::to_string(now.rax);
      if (run_->exit_reason == KVM_EXIT_MMIO) what += ", mmio at " + std::to_string(run_->mmio.phys_addr);
      throw std::runtime_error(what);
    }
  }

 private:
  void slot(uint32_t n, uint64_t gpa, uint64_t size, void* hva) {
    kvm_userspace_memory_region m{n, 0, gpa, size, reinterpret_cast<uint64_t>(hva)};
    if (ioctl(vm_->get(), KVM_SET_USER_MEMORY_REGION, &m) < 0) fail("KVM_SET_USER_MEMORY_REGION");
  }
  void set_cpuid() {
    // The ioctl numbers encode the size of the 8-byte header (nent, padding); the C++ view of the
    // kernel header's flexible array may not, so they are spelled out (as vmm/kvm/kvm.cpp does).
    struct Header {
      uint32_t nent, pad;
    };
    constexpr unsigned long kGetSupported = _IOWR(KVMIO, 0x05, Header), kSet = _IOW(KVMIO, 0x90, Header);
    for (uint32_t n = 128; n <= 4096; n *= 2) {
      std::vector<uint8_t> buf(sizeof(Header) + n * sizeof(kvm_cpuid_entry2));
      const Header h{n, 0};
      std::memcpy(buf.data(), &h, sizeof h);
      if (ioctl(kvm_.get(), kGetSupported, buf.data()) == 0) {
        if (ioctl(vcpu_->get(), kSet, buf.data()) < 0) fail("KVM_SET_CPUID2");
        return;
      }
      if (errno != E2BIG) fail("KVM_GET_SUPPORTED_CPUID");
    }
    throw std::runtime_error("KVM_GET_SUPPORTED_CPUID: too many entries");
  }

  Fd kvm_{::open("/dev/kvm", O_RDWR | O_CLOEXEC), "open /dev/kvm"};
  ThpMapping low_;
  const ThpMapping& measured_;
  std::unique_ptr<Fd> vm_, vcpu_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
};

template <class F>
double seconds(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

GuestMappedDiscard probe_guest_mapped_discard(uint64_t bytes, unsigned reps) {
  GuestMappedDiscard r;
  ThpMapping guest(bytes), raw(bytes);
  ProbeVm vm(guest);
  // Interleaved, so both floors see the same moment of this host's drifting memory speed.
  for (unsigned i = 0; i < reps; i++) {
    r.guest_touch_gib_s.push_back(bytes / kGiB / seconds([&] { vm.touch(); }));
    r.gib_s.push_back(bytes / kGiB / seconds([&] { guest.advise(0, bytes, MADV_DONTNEED, "MADV_DONTNEED (guest-mapped)"); }));
    raw.touch();
    r.raw_gib_s.push_back(bytes / kGiB / seconds([&] { raw.advise(0, bytes, MADV_DONTNEED, "MADV_DONTNEED"); }));
  }
  return r;
}

}  // namespace hvmm::limits
