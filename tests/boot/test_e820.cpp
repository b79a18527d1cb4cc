#include <catch2/catch.hpp>

#include "vmm/boot/boot_params.hpp"
#include "abi/layout.hpp"

using namespace hvmm::boot;
using namespace hvmm::layout;

namespace {
void check_low_part(const std::vector<E820Entry>& m, uint64_t low_end) {
  REQUIRE(m.size() >= 3);
  CHECK(m[0].addr == 0);
  CHECK(m[0].size == kEbdaStart);
  CHECK(m[0].type == kE820Ram);
  CHECK(m[1].addr == kEbdaStart);
  CHECK(m[1].addr + m[1].size == 1 * MiB);
  CHECK(m[1].type == kE820Reserved);
  CHECK(m[2].addr == 1 * MiB);
  CHECK(m[2].addr + m[2].size == low_end);
  CHECK(m[2].type == kE820Ram);
}
}  // namespace

TEST_CASE("layout splits RAM around the MMIO hole") {
  CHECK(split_ram(64 * MiB).low_bytes == 64 * MiB);
  CHECK(split_ram(64 * MiB).high_bytes == 0);
  CHECK(split_ram(3 * GiB).low_bytes == 3 * GiB);
  CHECK(split_ram(3 * GiB).high_bytes == 0);
  CHECK(split_ram(16 * GiB).low_bytes == 3 * GiB);
  CHECK(split_ram(16 * GiB).high_bytes == 13 * GiB);
  CHECK(ram_end(64 * MiB) == 64 * MiB);
  CHECK(ram_end(3 * GiB) == 3 * GiB);
  CHECK(ram_end(16 * GiB) == 17 * GiB);
}

TEST_CASE("e820 for 64 MiB: low RAM only") {
  auto m = e820_map(64 * MiB);
  CHECK(m.size() == 3);
  check_low_part(m, 64 * MiB);
}

TEST_CASE("e820 for 3 GiB: exactly fills the space below the hole") {
  auto m = e820_map(3 * GiB);
  CHECK(m.size() == 3);
  check_low_part(m, kHoleStart);
}

TEST_CASE("e820 for 16 GiB: RAM resumes at 4 GiB, high page tables reserved below the hole") {
  auto m = e820_map(16 * GiB);
  const auto pt = high_page_tables(16 * GiB);
  CHECK(pt.size == 2 * MiB);  // 13 directories of 4 KiB, rounded up to one 2 MiB frame
  CHECK(pt.start + pt.size == kHoleStart);
  REQUIRE(m.size() == 5);
  check_low_part(m, pt.start);
  CHECK(m[3].addr == pt.start);
  CHECK(m[3].size == pt.size);
  CHECK(m[3].type == kE820Reserved);
  CHECK(m[4].addr == 4 * GiB);
  CHECK(m[4].size == 13 * GiB);
  CHECK(m[4].type == kE820Ram);
  uint64_t ram = 0;
  for (auto& e : m)
    if (e.type == kE820Ram) ram += e.size;
  CHECK(ram == 16 * GiB - (1 * MiB - kEbdaStart) - pt.size);
}

TEST_CASE("high page tables: none without RAM above 4 GiB, whole 2 MiB frames otherwise") {
  CHECK(high_page_tables(3 * GiB).size == 0);
  CHECK(high_page_tables(kMaxRam).size == 4 * MiB);  // 1021 tables of 4 KiB, rounded up
  CHECK(high_page_tables(kMaxRam).size % (2 * MiB) == 0);
}

TEST_CASE("e820 refuses sizes outside the supported range") {
  CHECK_THROWS_AS(e820_map(1 * MiB), std::invalid_argument);
  CHECK_THROWS_AS(e820_map(kMaxRam + 2 * MiB), std::invalid_argument);
}
