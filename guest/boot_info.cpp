#include "guest/boot_info.hpp"

#include <cstring>

extern "C" {
#include <libfdt.h>
}

#include "guest/hypercall.hpp"

namespace guest {
namespace {
constexpr uint32_t kSetupDtb = 2;
constexpr size_t kSetupDataOffset = 0x250;  // boot_params.hdr.setup_data

struct SetupData {
  uint64_t next;
  uint32_t type;
  uint32_t len;
  uint8_t data[];
};

uint64_t read_cells(const fdt32_t* p, int cells) {
  uint64_t v = 0;
  for (int i = 0; i < cells; i++) v = (v << 32) | fdt32_to_cpu(p[i]);
  return v;
}
}  // namespace

void parse_boot_info(const void* zero_page, BootInfo& out) {
  uint64_t sd;
  memcpy(&sd, static_cast<const uint8_t*>(zero_page) + kSetupDataOffset, sizeof sd);
  const void* fdt = nullptr;
  for (unsigned hops = 0; sd && hops < 16; hops++) {
    auto* s = reinterpret_cast<const SetupData*>(sd);
    if (s->type == kSetupDtb) fdt = s->data;
    sd = s->next;
  }
  if (!fdt || fdt_check_header(fdt) != 0) panic("boot: no valid device tree in setup_data");

  int mem = fdt_path_offset(fdt, "/memory@0");
  int len = 0;
  auto* reg = static_cast<const fdt32_t*>(fdt_getprop(fdt, mem, "reg", &len));
  if (mem < 0 || !reg) panic("boot: device tree has no /memory@0 reg");
  for (int i = 0; i + 16 <= len && out.ram_count < BootInfo::kMaxRanges; i += 16) {
    MemRange r{read_cells(reg + i / 4, 2), read_cells(reg + i / 4 + 2, 2)};
    out.ram[out.ram_count++] = r;
    out.ram_bytes += r.size;
  }

  for (int i = 0; i < fdt_num_mem_rsv(fdt) && out.reserved_count < BootInfo::kMaxRanges; i++) {
    uint64_t addr, size;
    if (fdt_get_mem_rsv(fdt, i, &addr, &size) == 0) out.reserved[out.reserved_count++] = {addr, size};
  }

  int cpus = fdt_path_offset(fdt, "/cpus");
  if (cpus < 0) panic("boot: device tree has no /cpus");
  int node;
  fdt_for_each_subnode(node, fdt, cpus) out.cpus++;
  auto* tsc = static_cast<const fdt32_t*>(fdt_getprop(fdt, cpus, "hvmm,tsc-hz", &len));
  if (tsc && len == 8) out.tsc_hz = read_cells(tsc, 2);
  auto* wl = static_cast<const fdt32_t*>(fdt_getprop(fdt, cpus, "hvmm,workload-cpus", &len));
  if (wl && len == 4 && fdt32_to_cpu(*wl) > 0 && fdt32_to_cpu(*wl) < out.cpus) {
    out.service_cpus = out.cpus - fdt32_to_cpu(*wl);
    out.cpus = fdt32_to_cpu(*wl);
  }

  int chosen = fdt_path_offset(fdt, "/chosen");
  if (auto* args = static_cast<const char*>(fdt_getprop(fdt, chosen, "bootargs", &len)); args && len > 0) {
    out.bootargs = args;
    const char* sep = strstr(args, "-- ");
    while (sep && sep != args && sep[-1] != ' ') sep = strstr(sep + 1, "-- ");
    if (sep) out.workload = sep + 3;
  }
  // The initrd: inside RAM and reserved (the host checks that); the replay step validates its bytes.
  auto* is = static_cast<const fdt32_t*>(fdt_getprop(fdt, chosen, "linux,initrd-start", &len));
  int len_end = 0;
  auto* ie = static_cast<const fdt32_t*>(fdt_getprop(fdt, chosen, "linux,initrd-end", &len_end));
  if (is && ie && len == 8 && len_end == 8 && read_cells(ie, 2) > read_cells(is, 2))
    out.initrd = {read_cells(is, 2), read_cells(ie, 2) - read_cells(is, 2)};
  if (auto* ga = static_cast<const char*>(fdt_getprop(fdt, chosen, "hvmm,guest-alloc", &len)); ga && len > 0)
    out.buddy = strcmp(ga, "buddy") == 0;

  fdt_for_each_subnode(node, fdt, 0) {
    if (fdt_node_check_compatible(fdt, node, "virtio,mmio") != 0 || out.virtio_count == BootInfo::kMaxVirtio) continue;
    auto* r = static_cast<const fdt32_t*>(fdt_getprop(fdt, node, "reg", &len));
    if (r && len == 16) out.virtio[out.virtio_count++] = {read_cells(r, 2), read_cells(r + 2, 2)};
  }

  int ha = fdt_path_offset(fdt, "/hyperalloc");
  if (ha >= 0) {
    auto* port = static_cast<const fdt32_t*>(fdt_getprop(fdt, ha, "hvmm,install-port", &len));
    if (port && len == 4) out.hyperalloc_port = static_cast<int>(fdt32_to_cpu(*port));
  }
}

}  // namespace guest
