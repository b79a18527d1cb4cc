#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "vmm/boot/fdt_builder.hpp"
#include "abi/layout.hpp"

extern "C" {
#include <libfdt.h>
}

using namespace hvmm::boot;
using namespace hvmm::layout;

namespace {

// Parses the blob back with libfdt, as the guest does.
struct Parsed {
  std::vector<uint8_t> blob;
  explicit Parsed(std::vector<uint8_t> b) : blob(std::move(b)) {
    REQUIRE(fdt_check_header(blob.data()) == 0);
    REQUIRE(fdt_totalsize(blob.data()) == blob.size());
  }
  const void* fdt() const { return blob.data(); }
  int node(const char* path) const { return fdt_path_offset(fdt(), path); }
  // Property as raw bytes; empty optional-like: REQUIREs presence.
  std::vector<uint8_t> prop(const char* path, const char* name) const {
    int off = node(path);
    REQUIRE(off >= 0);
    int len = 0;
    auto* p = static_cast<const uint8_t*>(fdt_getprop(fdt(), off, name, &len));
    INFO(path << " " << name);
    REQUIRE(p != nullptr);
    return {p, p + len};
  }
  std::string str(const char* path, const char* name) const {
    auto v = prop(path, name);
    REQUIRE(!v.empty());
    CHECK(v.back() == 0);
    return std::string(reinterpret_cast<const char*>(v.data()));
  }
  uint32_t u32(const char* path, const char* name) const {
    auto v = prop(path, name);
    REQUIRE(v.size() == 4);
    return fdt32_ld(reinterpret_cast<const fdt32_t*>(v.data()));
  }
  std::vector<uint64_t> u64s(const char* path, const char* name) const {
    auto v = prop(path, name);
    REQUIRE(v.size() % 8 == 0);
    std::vector<uint64_t> out;
    for (size_t i = 0; i < v.size(); i += 8)
      out.push_back(fdt64_to_cpu(*reinterpret_cast<const fdt64_t*>(v.data() + i)));
    return out;
  }
};

FdtConfig base_config(uint64_t ram) {
  return FdtConfig{ram, 1, 2'000'000'000, "hello", {}};
}

}  // namespace

TEST_CASE("FDT root, chosen and memory for 64 MiB") {
  Parsed t(build_fdt(base_config(64 * MiB)));
  CHECK(t.u32("/", "#address-cells") == 2);
  CHECK(t.u32("/", "#size-cells") == 2);
  CHECK(t.str("/", "compatible") == "hvmm,vm");
  CHECK(t.str("/chosen", "bootargs") == "hello");
  CHECK(t.str("/memory@0", "device_type") == "memory");
  CHECK(t.u64s("/memory@0", "reg") == std::vector<uint64_t>{0, 64 * MiB});
  CHECK(t.node("/hyperalloc") == -FDT_ERR_NOTFOUND);
}

TEST_CASE("FDT memory for 16 GiB has the high region at 4 GiB") {
  Parsed t(build_fdt(base_config(16 * GiB)));
  CHECK(t.u64s("/memory@0", "reg") == std::vector<uint64_t>{0, 3 * GiB, 4 * GiB, 13 * GiB});
}

TEST_CASE("FDT cpus, tsc, and the nodes devices write themselves") {
  auto cfg = base_config(64 * MiB);
  cfg.cpus = 12;
  cfg.tsc_hz = 2'100'000'123;
  cfg.bootargs = "console=ttyS0 workload=\"alloc 2G; free\"";
  // Two devices, each writing its node (as vmm/device_manager.cpp and the hyperalloc mechanism do).
  cfg.device_nodes.push_back([](FdtWriter& w) {
    w.begin_node("hyperalloc");
    w.prop_string("compatible", "hvmm,hyperalloc");
    w.prop_u32("hvmm,install-port", 0x5E0);
    w.end_node();
  });
  for (uint64_t i : {0, 1})
    cfg.device_nodes.push_back([i](FdtWriter& w) {
      const uint64_t base = kVirtioMmioBase + i * kVirtioMmioSlot;
      w.begin_node(fmt::format("virtio_mmio@{:x}", base));
      w.prop_string("compatible", "virtio,mmio");
      w.prop_u64s("reg", {base, kVirtioMmioSlot});
      w.prop_u32("interrupts", uint32_t(5 + i));
      w.end_node();
    });
  Parsed t(build_fdt(cfg));

  CHECK(t.str("/chosen", "bootargs") == cfg.bootargs);
  CHECK(t.u32("/cpus", "#address-cells") == 1);
  CHECK(t.u32("/cpus", "#size-cells") == 0);
  CHECK(t.u64s("/cpus", "hvmm,tsc-hz") == std::vector<uint64_t>{2'100'000'123});

  // Walk the cpu children the way a guest would.
  int cpus = t.node("/cpus");
  REQUIRE(cpus >= 0);
  unsigned n = 0;
  int child;
  fdt_for_each_subnode(child, t.fdt(), cpus) {
    int len = 0;
    auto* dt = static_cast<const char*>(fdt_getprop(t.fdt(), child, "device_type", &len));
    REQUIRE(dt != nullptr);
    CHECK(std::string(dt) == "cpu");
    auto* reg = static_cast<const fdt32_t*>(fdt_getprop(t.fdt(), child, "reg", &len));
    REQUIRE(len == 4);
    CHECK(fdt32_ld(reg) == n);
    ++n;
  }
  CHECK(n == 12);
  CHECK(t.node("/cpus/cpu@b") >= 0);  // unit address in hex

  CHECK(t.str("/hyperalloc", "compatible") == "hvmm,hyperalloc");
  CHECK(t.u32("/hyperalloc", "hvmm,install-port") == 0x5E0);

  CHECK(t.str("/virtio_mmio@d0000000", "compatible") == "virtio,mmio");
  CHECK(t.u64s("/virtio_mmio@d0000000", "reg") == std::vector<uint64_t>{kVirtioMmioBase, kVirtioMmioSlot});
  CHECK(t.u32("/virtio_mmio@d0000000", "interrupts") == 5);
  CHECK(t.u64s("/virtio_mmio@d0001000", "reg") == std::vector<uint64_t>{kVirtioMmioBase + 0x1000, 0x1000});
  CHECK(t.u32("/virtio_mmio@d0001000", "interrupts") == 6);
  CHECK(fdt_node_offset_by_compatible(t.fdt(), -1, "virtio,mmio") >= 0);
}

TEST_CASE("FDT grows its buffer for big trees and refuses nonsense") {
  auto cfg = base_config(64 * MiB);
  cfg.cpus = kFdtMaxCpus;
  cfg.bootargs = std::string(30000, 'a');
  Parsed t(build_fdt(cfg));
  CHECK(t.node("/cpus/cpu@fe") >= 0);
  CHECK(t.str("/chosen", "bootargs").size() == 30000);

  cfg = base_config(64 * MiB);
  cfg.cpus = 0;
  CHECK_THROWS_AS(build_fdt(cfg), std::invalid_argument);
  cfg.cpus = kFdtMaxCpus + 1;
  CHECK_THROWS_AS(build_fdt(cfg), std::invalid_argument);
}

TEST_CASE("FDT with an initrd and the buddy allocator: reserve map entry in whole 2 MiB frames, /chosen properties") {
  auto cfg = base_config(16 * GiB);
  const Range rd = initrd_region(16 * GiB, 0, 300 * KiB, 4 * MiB);
  REQUIRE(rd.size == 2 * MiB);
  cfg.initrd_start = rd.start;
  cfg.initrd_size = 300 * KiB;
  cfg.guest_alloc = "buddy";
  Parsed t(build_fdt(cfg));
  REQUIRE(fdt_num_mem_rsv(t.fdt()) == 2);  // the high page tables, then the initrd
  uint64_t addr = 0, size = 0;
  REQUIRE(fdt_get_mem_rsv(t.fdt(), 1, &addr, &size) == 0);
  CHECK(addr == rd.start);
  CHECK(size == 2 * MiB);
  CHECK(t.u64s("/chosen", "linux,initrd-start") == std::vector<uint64_t>{rd.start});
  CHECK(t.u64s("/chosen", "linux,initrd-end") == std::vector<uint64_t>{rd.start + 300 * KiB});
  CHECK(t.str("/chosen", "hvmm,guest-alloc") == "buddy");
}

TEST_CASE("initrd_region: below the high page tables, at the top of small RAM, nothing when it does not fit") {
  const Range pt = high_page_tables(16 * GiB);
  CHECK(initrd_region(16 * GiB, 0, 1, 0).start == pt.start - 2 * MiB);
  CHECK(initrd_region(16 * GiB, 0, 1, 0).size == 2 * MiB);
  CHECK(initrd_region(256 * MiB, 0, 5 * MiB, 0).start == 256 * MiB - 6 * MiB);
  CHECK(initrd_region(256 * MiB, 0, 5 * MiB, 0).size == 6 * MiB);
  CHECK(initrd_region(256 * MiB, 0, 0, 0).size == 0);
  CHECK(initrd_region(64 * MiB, 0, 60 * MiB, 8 * MiB).size == 0);  // would overlap the kernel below 8 MiB
  CHECK(initrd_region(64 * MiB, 0, 100 * MiB, 0).size == 0);
}
