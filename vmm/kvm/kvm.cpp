#include "vmm/kvm/kvm.hpp"

#include "abi/layout.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

namespace hvmm {
namespace {
// <linux/kvm.h> declares the flexible arrays of kvm_cpuid2 and kvm_msrs through
// __DECLARE_FLEX_ARRAY, which under C++ adds an empty struct and moves the entries (offset 12 and
// 16 instead of 8). We lay the buffers out as the kernel expects and encode the ioctls to match.
struct ArrayHeader {
  uint32_t count;
  uint32_t padding;
};
static_assert(sizeof(ArrayHeader) == 8);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, ArrayHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, ArrayHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, ArrayHeader);

template <class Entry>
std::vector<uint8_t> array_buffer(const Entry* entries, size_t n) {
  std::vector<uint8_t> buf(sizeof(ArrayHeader) + n * sizeof(Entry));
  ArrayHeader h{static_cast<uint32_t>(n), 0};
  std::memcpy(buf.data(), &h, sizeof h);
  if (entries && n) std::memcpy(buf.data() + sizeof h, entries, n * sizeof(Entry));
  return buf;
}

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(fmt::format("KVM {}: {}", what, strerror(errno)));
}
}  // namespace

KvmSystem::KvmSystem() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT)
      throw std::runtime_error("/dev/kvm does not exist: KVM is not available on this host (load kvm_intel/kvm_amd, or enable nested virtualisation)");
    if (e == EACCES || e == EPERM)
      throw std::runtime_error("/dev/kvm: permission denied (run as root or add yourself to the 'kvm' group)");
    throw std::runtime_error(fmt::format("opening /dev/kvm: {}", strerror(e)));
  }
  fd_ = Fd(fd);
  int version = ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION)
    throw std::runtime_error(fmt::format("/dev/kvm: unsupported KVM API version {}", version));
  int sz = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (sz <= 0) fail("KVM_GET_VCPU_MMAP_SIZE");
  mmap_size_ = static_cast<size_t>(sz);
}

int KvmSystem::check_extension(long cap) const { return ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap); }

unsigned KvmSystem::max_vcpus() const {
  int n = check_extension(KVM_CAP_MAX_VCPUS);
  if (n <= 0) n = check_extension(KVM_CAP_NR_VCPUS);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

unsigned KvmSystem::nr_memslots() const {
  int n = check_extension(KVM_CAP_NR_MEMSLOTS);
  return n > 0 ? static_cast<unsigned>(n) : 32;  // KVM's historical minimum
}

std::vector<kvm_cpuid_entry2> KvmSystem::supported_cpuid() const {
  for (unsigned n = 128; n <= 4096; n *= 2) {
    auto buf = array_buffer<kvm_cpuid_entry2>(nullptr, n);
    if (ioctl(fd_.get(), kGetSupportedCpuid, buf.data()) == 0) {
      ArrayHeader h;
      std::memcpy(&h, buf.data(), sizeof h);
      std::vector<kvm_cpuid_entry2> out(std::min<size_t>(h.count, n));
      std::memcpy(out.data(), buf.data() + sizeof h, out.size() * sizeof(kvm_cpuid_entry2));
      return out;
    }
    if (errno != E2BIG) fail("KVM_GET_SUPPORTED_CPUID");
  }
  throw std::runtime_error("KVM_GET_SUPPORTED_CPUID: too many entries");
}

KvmVm::KvmVm(const KvmSystem& sys) {
  int fd = ioctl(sys.fd(), KVM_CREATE_VM, 0);
  if (fd < 0) fail("KVM_CREATE_VM");
  fd_ = Fd(fd);
  // Required on Intel hosts before the first KVM_RUN (three pages for real-mode emulation, in the
  // MMIO hole: abi/layout.hpp).
  if (ioctl(fd, KVM_SET_TSS_ADDR, static_cast<unsigned long>(layout::kKvmTssAddr)) < 0) fail("KVM_SET_TSS_ADDR");
}

void KvmVm::set_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* hva) {
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = gpa;
  r.memory_size = size;
  r.userspace_addr = reinterpret_cast<uint64_t>(hva);
  if (ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r) < 0) fail("KVM_SET_USER_MEMORY_REGION");
}

void KvmVm::delete_memory_region(uint32_t slot, uint64_t gpa) {
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = gpa;
  if (ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r) < 0) fail("KVM_SET_USER_MEMORY_REGION (delete)");
}

KvmVcpu::KvmVcpu(const KvmSystem& sys, const KvmVm& vm, unsigned index) : index_(index) {
  int fd = ioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(index));
  if (fd < 0) fail("KVM_CREATE_VCPU");
  fd_ = Fd(fd);
  run_size_ = sys.vcpu_mmap_size();
  void* p = mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail("mmap of kvm_run");
  run_ = static_cast<kvm_run*>(p);
}

KvmVcpu::~KvmVcpu() {
  if (run_) munmap(run_, run_size_);
}

kvm_regs KvmVcpu::get_regs() const {
  kvm_regs r{};
  if (ioctl(fd_.get(), KVM_GET_REGS, &r) < 0) fail("KVM_GET_REGS");
  return r;
}
void KvmVcpu::set_regs(const kvm_regs& r) {
  if (ioctl(fd_.get(), KVM_SET_REGS, &r) < 0) fail("KVM_SET_REGS");
}
kvm_sregs KvmVcpu::get_sregs() const {
  kvm_sregs s{};
  if (ioctl(fd_.get(), KVM_GET_SREGS, &s) < 0) fail("KVM_GET_SREGS");
  return s;
}
void KvmVcpu::set_sregs(const kvm_sregs& s) {
  if (ioctl(fd_.get(), KVM_SET_SREGS, &s) < 0) fail("KVM_SET_SREGS");
}

void KvmVcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  auto buf = array_buffer(entries.data(), entries.size());
  if (ioctl(fd_.get(), kSetCpuid2, buf.data()) < 0) fail("KVM_SET_CPUID2");
}

void KvmVcpu::set_msrs(const std::vector<kvm_msr_entry>& msrs) {
  auto buf = array_buffer(msrs.data(), msrs.size());
  int n = ioctl(fd_.get(), kSetMsrs, buf.data());
  if (n < 0) fail("KVM_SET_MSRS");
  if (static_cast<size_t>(n) != msrs.size())
    throw std::runtime_error(fmt::format("KVM_SET_MSRS: MSR {:#x} refused", msrs[static_cast<size_t>(n)].index));
}

void KvmVcpu::set_mp_state_runnable() {
  kvm_mp_state s{KVM_MP_STATE_RUNNABLE};
  ioctl(fd_.get(), KVM_SET_MP_STATE, &s);  // without an in-kernel LAPIC every vCPU is runnable anyway
}

uint64_t KvmVcpu::tsc_khz() const {
  int r = ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
  return r > 0 ? static_cast<uint64_t>(r) : 0;
}

bool KvmVcpu::run() {
  if (ioctl(fd_.get(), KVM_RUN, 0) == 0) return true;
  if (errno == EINTR || errno == EAGAIN) return false;
  fail("KVM_RUN");
}

}  // namespace hvmm
