#include "vmm/boot/fdt_builder.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "abi/layout.hpp"

extern "C" {
#include <libfdt.h>
}

namespace hvmm::boot {
namespace {

// Thrown when the buffer is too small, so build_fdt can retry with a larger one.
struct NoSpace {};

void check(int err, const char* step) {
  if (err == -FDT_ERR_NOSPACE) throw NoSpace{};
  if (err < 0) throw std::runtime_error(fmt::format("building the device tree: {}: {}", step, fdt_strerror(err)));
}

void write_tree(void* fdt, const FdtConfig& cfg) {
  std::vector<fdt64_t> cells;
  // Boot data the guest must not allocate from (the high page directories, layout.hpp).
  if (auto pt = layout::high_page_tables(cfg.ram_bytes, cfg.map_end); pt.size)
    check(fdt_add_reservemap_entry(fdt, pt.start, pt.size), "reserve map entry");
  // The initrd (--trace), in whole 2 MiB frames (layout::initrd_region).
  const uint64_t initrd_frames = (cfg.initrd_size + layout::kRamAlign - 1) / layout::kRamAlign * layout::kRamAlign;
  if (cfg.initrd_size) check(fdt_add_reservemap_entry(fdt, cfg.initrd_start, initrd_frames), "initrd reserve map entry");
  check(fdt_finish_reservemap(fdt), "reserve map");
  check(fdt_begin_node(fdt, ""), "root");
  check(fdt_property_u32(fdt, "#address-cells", 2), "#address-cells");
  check(fdt_property_u32(fdt, "#size-cells", 2), "#size-cells");
  check(fdt_property_string(fdt, "compatible", "hvmm,vm"), "compatible");

  check(fdt_begin_node(fdt, "chosen"), "chosen");
  check(fdt_property_string(fdt, "bootargs", cfg.bootargs.c_str()), "bootargs");
  if (cfg.initrd_size) {
    check(fdt_property_u64(fdt, "linux,initrd-start", cfg.initrd_start), "linux,initrd-start");
    check(fdt_property_u64(fdt, "linux,initrd-end", cfg.initrd_start + cfg.initrd_size), "linux,initrd-end");
  }
  if (!cfg.guest_alloc.empty()) check(fdt_property_string(fdt, "hvmm,guest-alloc", cfg.guest_alloc.c_str()), "hvmm,guest-alloc");
  check(fdt_end_node(fdt), "chosen");

  check(fdt_begin_node(fdt, "memory@0"), "memory");
  check(fdt_property_string(fdt, "device_type", "memory"), "device_type");
  auto split = layout::split_ram(cfg.ram_bytes);
  cells.clear();
  for (uint64_t v : {uint64_t{0}, split.low_bytes}) cells.push_back(cpu_to_fdt64(v));
  if (split.high_bytes)
    for (uint64_t v : {layout::kHoleEnd, split.high_bytes}) cells.push_back(cpu_to_fdt64(v));
  check(fdt_property(fdt, "reg", cells.data(), static_cast<int>(cells.size() * sizeof(fdt64_t))), "memory reg");
  check(fdt_end_node(fdt), "memory");

  check(fdt_begin_node(fdt, "cpus"), "cpus");
  check(fdt_property_u32(fdt, "#address-cells", 1), "cpus #address-cells");
  check(fdt_property_u32(fdt, "#size-cells", 0), "cpus #size-cells");
  check(fdt_property_u64(fdt, "hvmm,tsc-hz", cfg.tsc_hz), "hvmm,tsc-hz");
  if (cfg.workload_cpus && cfg.workload_cpus < cfg.cpus)
    check(fdt_property_u32(fdt, "hvmm,workload-cpus", cfg.workload_cpus), "hvmm,workload-cpus");
  for (unsigned i = 0; i < cfg.cpus; ++i) {
    check(fdt_begin_node(fdt, fmt::format("cpu@{:x}", i).c_str()), "cpu");
    check(fdt_property_string(fdt, "device_type", "cpu"), "cpu device_type");
    check(fdt_property_u32(fdt, "reg", i), "cpu reg");
    check(fdt_end_node(fdt), "cpu");
  }
  check(fdt_end_node(fdt), "cpus");

  FdtWriter w(fdt);
  for (const auto& node : cfg.device_nodes) node(w);

  check(fdt_end_node(fdt), "root");
  check(fdt_finish(fdt), "finish");
}

}  // namespace

void FdtWriter::begin_node(const std::string& name) { check(fdt_begin_node(fdt_, name.c_str()), "begin node"); }
void FdtWriter::end_node() { check(fdt_end_node(fdt_), "end node"); }
void FdtWriter::prop_string(const char* name, const std::string& value) {
  check(fdt_property_string(fdt_, name, value.c_str()), name);
}
void FdtWriter::prop_u32(const char* name, uint32_t value) { check(fdt_property_u32(fdt_, name, value), name); }
void FdtWriter::prop_u64s(const char* name, std::initializer_list<uint64_t> values) {
  std::vector<fdt64_t> cells;
  for (uint64_t v : values) cells.push_back(cpu_to_fdt64(v));
  check(fdt_property(fdt_, name, cells.data(), static_cast<int>(cells.size() * sizeof(fdt64_t))), name);
}

std::vector<uint8_t> build_fdt(const FdtConfig& cfg) {
  if (cfg.cpus == 0 || cfg.cpus > kFdtMaxCpus)
    throw std::invalid_argument(fmt::format("building the device tree: {} vCPUs (1..{} supported)", cfg.cpus, kFdtMaxCpus));
  if (cfg.ram_bytes == 0) throw std::invalid_argument("building the device tree: no guest RAM");
  if (cfg.bootargs.find('\0') != std::string::npos)
    throw std::invalid_argument("building the device tree: bootargs contain a NUL byte");

  for (size_t size = 16 * 1024; size <= layout::kSetupDataMax * 4; size *= 2) {
    std::vector<uint8_t> buf(size);
    check(fdt_create(buf.data(), static_cast<int>(buf.size())), "create");
    try {
      write_tree(buf.data(), cfg);
    } catch (const NoSpace&) {
      continue;
    }
    buf.resize(fdt_totalsize(buf.data()));  // fdt_finish packs the blob and sets totalsize
    return buf;
  }
  throw std::runtime_error("building the device tree: blob exceeds the setup_data slot");
}

}  // namespace hvmm::boot
