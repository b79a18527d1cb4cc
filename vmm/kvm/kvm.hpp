// RAII wrappers for the three KVM objects: the system (/dev/kvm), a VM, and a vCPU.
// Every failing ioctl throws std::runtime_error naming the call and errno.
#pragma once
#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "base/fd.hpp"

namespace hvmm {

class KvmSystem {
 public:
  KvmSystem();  // opens /dev/kvm; clear errors for "missing" and "permission denied"
  int fd() const { return fd_.get(); }
  int check_extension(long cap) const;
  unsigned nr_memslots() const;  // KVM_CAP_NR_MEMSLOTS (user memory slots per address space)
  size_t vcpu_mmap_size() const { return mmap_size_; }
  unsigned max_vcpus() const;
  // Supported CPUID leaves (KVM_GET_SUPPORTED_CPUID).
  std::vector<kvm_cpuid_entry2> supported_cpuid() const;

 private:
  Fd fd_;
  size_t mmap_size_ = 0;
};

class KvmVm {
 public:
  explicit KvmVm(const KvmSystem& sys);
  int fd() const { return fd_.get(); }
  void set_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* hva);
  // Deletes a slot (memory_size 0): guest accesses to its range become MMIO exits.
  void delete_memory_region(uint32_t slot, uint64_t gpa);

 private:
  Fd fd_;
};

class KvmVcpu {
 public:
  KvmVcpu(const KvmSystem& sys, const KvmVm& vm, unsigned index);
  ~KvmVcpu();
  KvmVcpu(const KvmVcpu&) = delete;
  KvmVcpu& operator=(const KvmVcpu&) = delete;
  int fd() const { return fd_.get(); }
  kvm_run* run_data() const { return run_; }
  unsigned index() const { return index_; }

  kvm_regs get_regs() const;
  void set_regs(const kvm_regs& r);
  kvm_sregs get_sregs() const;
  void set_sregs(const kvm_sregs& s);
  void set_cpuid(const std::vector<kvm_cpuid_entry2>& entries);
  void set_msrs(const std::vector<kvm_msr_entry>& msrs);
  void set_mp_state_runnable();
  uint64_t tsc_khz() const;  // KVM_GET_TSC_KHZ, 0 if unknown
  // KVM_RUN; returns false when interrupted by a signal (EINTR/EAGAIN), throws on other errors.
  bool run();

 private:
  Fd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  unsigned index_;
};

}  // namespace hvmm
