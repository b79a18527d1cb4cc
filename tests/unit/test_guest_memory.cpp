#include <catch2/catch.hpp>

#include "memory/guest_memory.hpp"
#include "abi/layout.hpp"

using namespace hvmm;
using namespace hvmm::layout;

TEST_CASE("guest RAM is split around the MMIO hole") {
  GuestMemory small(64 * MiB);
  REQUIRE(small.regions().size() == 1);
  CHECK(small.regions()[0].gpa == 0);
  CHECK(small.regions()[0].size == 64 * MiB);
  CHECK(reinterpret_cast<uintptr_t>(small.host_base()) % (2 * MiB) == 0);

  GuestMemory big(16 * GiB);  // MAP_NORESERVE: costs nothing untouched
  REQUIRE(big.regions().size() == 2);
  CHECK(big.regions()[0].size == kHoleStart);
  CHECK(big.regions()[1].gpa == kHoleEnd);
  CHECK(big.regions()[1].size == 13 * GiB);
  CHECK(big.contains(kHoleStart - 4096, 4096));
  CHECK_FALSE(big.contains(kHoleStart - 4096, 4097));  // crosses into the hole
  CHECK_FALSE(big.contains(kHoleStart, 1));
  CHECK(big.contains(kHoleEnd + 13 * GiB - 1, 1));
  CHECK_FALSE(big.contains(kHoleEnd + 13 * GiB, 1));
}

TEST_CASE("translations refuse hostile ranges") {
  GuestMemory m(16 * MiB);
  CHECK(m.hva(0, 16 * MiB) == m.host_base());
  CHECK(m.hva(16 * MiB, 1) == nullptr);
  CHECK(m.hva(~uint64_t{0}, 2) == nullptr);          // wraps
  CHECK(m.hva(4096, ~uint64_t{0} - 100) == nullptr);  // absurd length
  uint64_t v = 0x1122334455667788;
  CHECK(m.write_obj(0x1000, v));
  uint64_t r = 0;
  CHECK(m.read_obj(0x1000, r));
  CHECK(r == v);
  CHECK_FALSE(m.write_obj(16 * MiB - 4, v));
}

TEST_CASE("discard drops contents, populate is bounds-checked") {
  GuestMemory m(16 * MiB);
  auto* p = m.hva(2 * MiB, 2 * MiB);
  p[0] = 42;
  CHECK(m.discard(2 * MiB, 2 * MiB));
  CHECK(p[0] == 0);
  CHECK(m.populate(2 * MiB, 2 * MiB));
  CHECK_FALSE(m.discard(1, 4096));           // unaligned
  CHECK_FALSE(m.discard(15 * MiB, 2 * MiB));  // beyond RAM
}

TEST_CASE("test constructor builds sparse regions") {
  GuestMemory::RegionSpec specs[] = {{0, 64 * KiB}, {1 * MiB, 128 * KiB}};
  GuestMemory m(specs);
  CHECK(m.ram_bytes() == 192 * KiB);
  CHECK(m.contains(1 * MiB + 4096, 4096));
  CHECK_FALSE(m.contains(64 * KiB, 1));
}
