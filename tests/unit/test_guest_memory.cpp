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

TEST_CASE("virtio-mem region: unplugged blocks are refused like memory outside RAM") {
  const Range hot = hotplug_region(1 * GiB, 64 * MiB);
  CHECK(hot.start == kHoleEnd);  // above the hole even when boot RAM ends below it
  GuestMemory m(1 * GiB, hot.start, hot.size, 2 * MiB);
  REQUIRE(m.hotplug() != nullptr);
  CHECK(m.regions().size() == 1);  // not RAM
  CHECK(reinterpret_cast<uintptr_t>(m.hotplug()->hva) % (2 * MiB) == 0);
  uint64_t v = 42;
  // Everything starts unplugged.
  CHECK(m.hva(hot.start, 1) == nullptr);
  CHECK_FALSE(m.write_obj(hot.start + 8, v));
  CHECK_FALSE(m.read_obj(hot.start + 8, v));
  CHECK_FALSE(m.discard(hot.start, 2 * MiB));
  // Plug blocks 1 and 2: they are accessible, their neighbours are not, nor a range crossing them.
  REQUIRE(m.set_plugged(hot.start + 2 * MiB, 4 * MiB, true));
  CHECK(m.write_obj(hot.start + 2 * MiB, v));
  CHECK(m.read_obj(hot.start + 6 * MiB - 8, v));
  CHECK(m.contains(hot.start + 2 * MiB, 4 * MiB));
  CHECK_FALSE(m.contains(hot.start + 2 * MiB - 1, 2));
  CHECK_FALSE(m.contains(hot.start + 6 * MiB - 1, 2));
  CHECK(m.plugged(hot.start + 3 * MiB, 1));
  CHECK_FALSE(m.plugged(hot.start, 1));
  // Hostile ranges: wrapping, past the region, partial blocks.
  CHECK(m.hva(hot.start + 2 * MiB, ~uint64_t{0}) == nullptr);
  CHECK(m.hva(hot.end(), 1) == nullptr);
  CHECK_FALSE(m.set_plugged(hot.start + 4096, 2 * MiB, true));
  CHECK_FALSE(m.set_plugged(hot.start, 3 * MiB, true));
  CHECK_FALSE(m.set_plugged(hot.end() - 2 * MiB, 4 * MiB, true));
  CHECK_FALSE(m.set_plugged(0, 2 * MiB, true));  // boot RAM is not pluggable
  // Unplug: inaccessible again, and the contents are gone when plugged back.
  uint64_t w = 0x5555;
  REQUIRE(m.write_obj(hot.start + 2 * MiB, w));
  REQUIRE(m.set_plugged(hot.start + 2 * MiB, 2 * MiB, false));
  CHECK_FALSE(m.read_obj(hot.start + 2 * MiB, w));
  CHECK(m.read_obj(hot.start + 4 * MiB, w));  // block 2 stays
  REQUIRE(m.set_plugged(hot.start + 2 * MiB, 2 * MiB, true));
  REQUIRE(m.read_obj(hot.start + 2 * MiB, w));
  CHECK(w == 0);  // discarded
}

TEST_CASE("virtio-mem region geometry is checked") {
  CHECK_THROWS(GuestMemory(1 * GiB, kHoleEnd, 3 * MiB, 2 * MiB));     // not whole blocks
  CHECK_THROWS(GuestMemory(1 * GiB, kHoleEnd + 4096, 2 * MiB, 2 * MiB));
  CHECK_THROWS(GuestMemory(1 * GiB, 512 * MiB, 2 * MiB, 2 * MiB));    // inside RAM
  CHECK_THROWS(GuestMemory(1 * GiB, kHoleEnd, 4 * MiB, 3 * MiB));     // block not a power of two
  CHECK(hotplug_region(6 * GiB, 2 * GiB).start == 7 * GiB);          // RAM ends at 7 GiB
  CHECK(high_page_tables(1 * GiB, 8 * GiB).size == 2 * MiB);         // the region is identity-mapped
}
