#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "vmm/api/size_parse.hpp"
#include "vmm/mechanisms/balloon.hpp"
#include "vmm/mechanisms/hyperalloc.hpp"
#include "abi/layout.hpp"
#include "abi/limits.hpp"
#include "vmm/mechanisms/none.hpp"
#include "vmm/mechanisms/virtio_mem.hpp"
#include "vmm/main/cli.hpp"

extern "C" const uint8_t hvmm_embedded_kernel_start[];
extern "C" const uint8_t hvmm_embedded_kernel_end[];

namespace hvmm::cli {

namespace {
// --auto-reclaim=PERIOD: 10 ms .. 1 h, with a unit (vmm/api/size_parse.hpp).
std::chrono::milliseconds parse_auto_period(const std::string& s) {
  std::string why;
  const auto p = parse_period(s, &why);
  if (!p) throw std::invalid_argument(fmt::format("--auto-reclaim={}: {}; e.g. 500ms, 2s or 1h", s, why));
  return *p;
}

// Each `alloc SIZE` / `alloc-huge SIZE` step with an absolute size must fit in the VM: caught here,
// before boot, rather than by the guest after the steps before it ran.
void check_workload_sizes(const std::string& workload, uint64_t guest_bytes) {
  size_t start = 0;
  while (start <= workload.size()) {
    size_t end = workload.find(';', start);
    if (end == std::string::npos) end = workload.size();
    std::string step = workload.substr(start, end - start);
    start = end + 1;
    const size_t a = step.find_first_not_of(" \t");
    if (a == std::string::npos) continue;
    step = step.substr(a, step.find_last_not_of(" \t") - a + 1);
    const size_t sp = step.find(' ');
    const std::string verb = step.substr(0, sp);
    if ((verb != "alloc" && verb != "alloc-huge") || sp == std::string::npos) continue;
    const std::string arg = step.substr(step.find_first_not_of(' ', sp));
    const auto size = parse_size(arg, nullptr);  // N%, all and bad sizes are the guest's to check
    if (size && *size > guest_bytes)
      throw std::invalid_argument(fmt::format("--workload: step '{}' asks for {}, more than the VM's {}", step,
                                              format_size(*size), format_size(guest_bytes)));
  }
}
// --reclaim virtio-mem: --mem is the maximum, split into boot RAM and the hot-plug region.
void configure_virtio_mem(const RunOptions& o, VmConfig& c) {
  using namespace layout;
  const uint64_t total = c.mem_bytes;
  std::string err;
  uint64_t boot = std::max(kHotplugMinBoot, total / 8 / kRamAlign * kRamAlign);
  if (!o.virtio_mem_boot.empty()) {
    auto b = parse_size(o.virtio_mem_boot, &err);
    if (!b) throw std::invalid_argument(fmt::format("--virtio-mem-boot {}: {}", o.virtio_mem_boot, err));
    boot = *b;
  }
  if (boot % kRamAlign || boot < kHotplugMinBoot)
    throw std::invalid_argument(fmt::format("--virtio-mem-boot {}: boot memory must be a multiple of 2 MiB and at least {}",
                                            format_size(boot), format_size(kHotplugMinBoot)));
  if (boot + kRamAlign > total)
    throw std::invalid_argument(fmt::format("--reclaim virtio-mem: boot memory {} leaves nothing to hot-plug in --mem {}",
                                            format_size(boot), format_size(total)));
  VirtioMemMechanism::Options vo;
  vo.floor = c.mem_min_bytes;
  if (!o.virtio_mem_step.empty()) {
    auto s = parse_size(o.virtio_mem_step, &err);
    if (!s) throw std::invalid_argument(fmt::format("--virtio-mem-step {}: {}", o.virtio_mem_step, err));
    if (*s < kRamAlign || *s % kRamAlign || *s > total)
      throw std::invalid_argument(
          fmt::format("--virtio-mem-step {}: must be a multiple of 2 MiB, at most --mem", o.virtio_mem_step));
    vo.auto_step = *s;
  }
  c.mem_bytes = boot;
  c.hotplug_bytes = total - boot;
  c.reclaim = std::make_shared<VirtioMemMechanism>(vo);
  if (o.auto_reclaim_set) c.auto_reclaim = o.auto_reclaim.empty() ? kDefaultVirtioMemAutoPeriod : parse_auto_period(o.auto_reclaim);
}
}  // namespace

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
  if (o.cpus < 1 || o.cpus > abi::kMaxWorkloadCpus)
    throw std::invalid_argument(fmt::format("--cpus {}: must be between 1 and {}", o.cpus, abi::kMaxWorkloadCpus));
  if (o.workload_set && o.workload.find_first_not_of(" \t;") == std::string::npos)
    throw std::invalid_argument("--workload: no steps given; leave --workload out for the demo");
  check_workload_sizes(o.workload, *mem);
  uint64_t mem_min = std::min(kDefaultMemMin, *mem);
  if (!o.mem_min.empty()) {
    auto m = parse_size(o.mem_min, &err);
    if (!m) throw std::invalid_argument(fmt::format("--mem-min {}: {}", o.mem_min, err));
    if (*m > *mem)
      throw std::invalid_argument(fmt::format("--mem-min {}: more than --mem {}", o.mem_min, o.mem));
    mem_min = *m;
  }
  if (o.workload.find('\0') != std::string::npos || o.cmdline.find('\0') != std::string::npos)
    throw std::invalid_argument("--cmdline/--workload: NUL bytes are not allowed");
  // The zero page's command line slot (abi/layout.hpp) holds it with its NUL: a bad command line,
  // not a host error, when it does not fit.
  if (const size_t n = kernel_cmdline(o.cmdline, o.workload).size(); n >= kCmdlineMax)
    throw std::invalid_argument(fmt::format("--cmdline/--workload: the kernel command line would be {} bytes; at most {}",
                                            n, kCmdlineMax - 1));
  const bool balloon = o.reclaim == "balloon" || o.reclaim == "balloon-huge";
  if (o.reclaim != "hyperalloc" && o.reclaim != "none" && !balloon && o.reclaim != "virtio-mem")
    throw std::invalid_argument(fmt::format(
        "--reclaim {}: unknown mechanism (hyperalloc, balloon, balloon-huge, virtio-mem or none)", o.reclaim));
  if (o.auto_reclaim_set && o.reclaim == "none")
    throw std::invalid_argument(
        "--auto-reclaim needs a mechanism: --reclaim hyperalloc (default), balloon, balloon-huge or virtio-mem");
  if ((!o.virtio_mem_boot.empty() || !o.virtio_mem_step.empty()) && o.reclaim != "virtio-mem")
    throw std::invalid_argument("--virtio-mem-boot/--virtio-mem-step need --reclaim virtio-mem");
  if (o.auto_reclaim_age_set) {
    if (o.auto_reclaim_age < 1 || o.auto_reclaim_age > 100)
      throw std::invalid_argument(fmt::format("--auto-reclaim-age {}: must be between 1 (no aging) and 100 scans", o.auto_reclaim_age));
    if (!o.auto_reclaim_set || o.reclaim != "hyperalloc")
      throw std::invalid_argument("--auto-reclaim-age needs --auto-reclaim with --reclaim hyperalloc");
  }

  if (o.guest_alloc != "llfree" && o.guest_alloc != "buddy")
    throw std::invalid_argument(fmt::format("--guest-alloc {}: unknown allocator (llfree or buddy)", o.guest_alloc));
  // HyperAlloc shares LLFree's words with the host; the virtio-mem driver plugs and unplugs LLFree's
  // huge frames. Neither exists for the buddy allocator.
  if (o.guest_alloc == "buddy" && (o.reclaim == "hyperalloc" || o.reclaim == "virtio-mem"))
    throw std::invalid_argument(fmt::format("--guest-alloc buddy does not work with --reclaim {} (it needs LLFree); "
                                            "use balloon, balloon-huge or none", o.reclaim));

  VmConfig c;
  c.mem_bytes = *mem;
  c.trace_path = o.trace;
  if (o.guest_alloc == "buddy") c.guest_alloc = "buddy";
  if (!o.mem_limit.empty()) {
    auto limit = parse_size(o.mem_limit, &err);
    if (!limit) throw std::invalid_argument(fmt::format("--mem-limit {}: {}", o.mem_limit, err));
    if (*limit % kRamAlign || *limit < kMinRam || *limit >= *mem)
      throw std::invalid_argument(fmt::format("--mem-limit {}: must be a multiple of 2 MiB, at least {} and less than --mem",
                                              o.mem_limit, format_size(kMinRam)));
    if (o.reclaim == "none") throw std::invalid_argument("--mem-limit needs a reclamation mechanism (not --reclaim none)");
    if (o.reclaim == "virtio-mem" && o.auto_reclaim_set)
      throw std::invalid_argument("--mem-limit does not work with virtio-mem's --auto-reclaim (its policy plugs memory by itself)");
    c.mem_limit = *limit;
  }
  c.cpus = o.cpus;
  c.kernel_path = o.kernel;
  c.builtin_kernel = {hvmm_embedded_kernel_start, static_cast<size_t>(hvmm_embedded_kernel_end - hvmm_embedded_kernel_start)};
  c.cmdline = o.cmdline;
  c.workload = o.workload;
  c.api_sock = o.api_sock;
  c.quiet = o.quiet;
  c.mem_min_bytes = mem_min;
  c.auto_reclaim_default = o.reclaim == "virtio-mem" ? kDefaultVirtioMemAutoPeriod : kDefaultAutoPeriod;
  if (o.reclaim == "hyperalloc") {
    reclaim::AutoReclaimConfig auto_cfg;
    if (o.auto_reclaim_age_set) auto_cfg.age_scans = static_cast<unsigned>(o.auto_reclaim_age);
    c.reclaim = std::make_shared<HyperallocMechanism>(auto_cfg);
    if (o.auto_reclaim_set) c.auto_reclaim = o.auto_reclaim.empty() ? kDefaultAutoPeriod : parse_auto_period(o.auto_reclaim);
  } else if (o.reclaim == "virtio-mem") {
    configure_virtio_mem(o, c);
  } else if (balloon) {  // the guest's reporting sets the pace: the period is not used
    BalloonMechanism::Options bo;
    bo.reporting = o.auto_reclaim_set;
    bo.huge = o.reclaim == "balloon-huge";  // 2 MiB balloon pages; --auto-reclaim is free page reporting too
    bo.deflate_on_oom = c.mem_limit == 0;   // with --mem-limit the guest must not deflate past it
    c.reclaim = std::make_shared<BalloonMechanism>(bo);
    if (o.auto_reclaim_set) c.auto_reclaim = std::chrono::milliseconds(2000);
  } else {
    c.reclaim = std::make_shared<NoReclaim>();
  }
  if (c.hotplug_bytes && c.mem_limit && c.mem_limit < c.mem_bytes)
    throw std::invalid_argument(fmt::format("--mem-limit {}: less than the {} of virtio-mem boot memory", o.mem_limit,
                                            format_size(c.mem_bytes)));
  return c;
}

int run_vm(const RunOptions& o) {
  Vm vm(make_vm_config(o));
  return vm.run();
}

}  // namespace hvmm::cli
