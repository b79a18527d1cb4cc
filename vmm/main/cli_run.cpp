#include <fmt/format.h>

#include <stdexcept>

#include "vmm/api/size_parse.hpp"
#include "vmm/layout.hpp"
#include "vmm/main/cli.hpp"

extern "C" const uint8_t hvmm_embedded_kernel_start[];
extern "C" const uint8_t hvmm_embedded_kernel_end[];

namespace hvmm::cli {

VmConfig make_vm_config(const RunOptions& o) {
  using namespace layout;
  std::string err;
  auto mem = parse_size(o.mem, &err);
  if (!mem) throw std::invalid_argument(fmt::format("--mem {}: {}", o.mem, err));
  if (*mem < kMinRam)
    throw std::invalid_argument(fmt::format("--mem {}: the guest needs at least {}", o.mem, format_size(kMinRam)));
  if (*mem > kMaxRam)
    throw std::invalid_argument(fmt::format("--mem {}: more than the maximum of {}", o.mem, format_size(kMaxRam)));
  if (*mem % kRamAlign) {
    uint64_t up = (*mem + kRamAlign - 1) / kRamAlign * kRamAlign;
    throw std::invalid_argument(fmt::format("--mem {}: not a multiple of 2 MiB (guest RAM is managed in 2 MiB frames); try --mem {}M",
                                            o.mem, up >> 20));
  }
  if (o.cpus < 1 || o.cpus > 64)
    throw std::invalid_argument(fmt::format("--cpus {}: must be between 1 and 64", o.cpus));
  if (o.workload.find('\0') != std::string::npos || o.cmdline.find('\0') != std::string::npos)
    throw std::invalid_argument("--cmdline/--workload: NUL bytes are not allowed");
  if (o.auto_reclaim_set)
    throw std::invalid_argument("--auto-reclaim: not available yet (host reclamation is still being built)");
  if (o.reclaim != "hyperalloc" && o.reclaim != "none")
    throw std::invalid_argument(fmt::format("--reclaim {}: not available yet (only 'hyperalloc' and 'none' are built)", o.reclaim));

  VmConfig c;
  c.mem_bytes = *mem;
  c.cpus = o.cpus;
  c.kernel_path = o.kernel;
  c.builtin_kernel = {hvmm_embedded_kernel_start, static_cast<size_t>(hvmm_embedded_kernel_end - hvmm_embedded_kernel_start)};
  c.cmdline = o.cmdline;
  c.workload = o.workload;
  c.api_sock = o.api_sock;
  c.quiet = o.quiet;
  return c;
}

int run_vm(const RunOptions& o) {
  Vm vm(make_vm_config(o));
  return vm.run();
}

}  // namespace hvmm::cli
