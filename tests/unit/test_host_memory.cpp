// The admission check's inputs and wording (issue 13, defect 7).
#include <catch2/catch.hpp>

#include <cerrno>

#include "memory/fault_injection.hpp"
#include "memory/guest_memory.hpp"
#include "memory/host_memory.hpp"

using namespace hvmm;

TEST_CASE("host memory: MemAvailable and SwapFree from /proc/meminfo") {
  auto i = parse_meminfo("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\nSwapTotal: 8 kB\nSwapFree:  4 kB\n");
  REQUIRE(i.has_value());
  CHECK(i->available_bytes == 20000000ull * 1024);
  CHECK(i->swap_free_bytes == 4096);
  CHECK(parse_meminfo("MemAvailable: 1 kB\n")->swap_free_bytes == 0);  // no swap line
  CHECK_FALSE(parse_meminfo("MemFree: 1 kB\n").has_value());
  CHECK_FALSE(parse_meminfo("MemAvailable: lots\n").has_value());
  CHECK_FALSE(parse_meminfo("MemAvailableX: 1 kB\n").has_value());
  CHECK_FALSE(parse_meminfo("MemAvailable: 99999999999999999999 kB\n").has_value());
  auto now = read_host_meminfo();
  REQUIRE(now.has_value());
  CHECK(now->available_bytes > 0);
}

TEST_CASE("host memory: the admission warning names the size, what the host has, and the remedy") {
  const HostMemInfo host{20ull << 30, 2ull << 30};
  CHECK_FALSE(admission_warning(22ull << 30, false, host).has_value());
  auto w = admission_warning(1ull << 40, false, host);
  REQUIRE(w.has_value());
  CHECK_THAT(*w, Catch::Contains("--mem 1024.0 GiB") && Catch::Contains("20.0 GiB available + 2.0 GiB free swap") &&
                     Catch::Contains("--mem-limit"));
  auto l = admission_warning(23ull << 30, true, host);
  REQUIRE(l.has_value());
  CHECK_THAT(*l, Catch::StartsWith("--mem-limit 23.0 GiB"));
}

TEST_CASE("fault injection: plans parse, and discard/populate fail as planned with the planned errno") {
  CHECK_FALSE(parse_fault_plan("discard=ENOSPC").has_value());
  CHECK_FALSE(parse_fault_plan("every=0").has_value());
  CHECK_FALSE(parse_fault_plan("bogus=1").has_value());
  auto p = parse_fault_plan("discard=ENOMEM,populate=EFAULT,every=2");
  REQUIRE(p.has_value());
  CHECK(p->discard_errno == ENOMEM);
  CHECK(p->populate_errno == EFAULT);
  CHECK(p->every == 2);

  GuestMemory::RegionSpec regions[] = {{0, 4u << 20}};
  GuestMemory mem(regions);
  set_fault_plan(p);
  CHECK(mem.discard(0, 4096));  // 1st
  errno = 0;
  CHECK_FALSE(mem.discard(0, 4096));  // 2nd fails
  CHECK(errno == ENOMEM);
  CHECK(mem.populate(0, 4096));
  CHECK_FALSE(mem.populate(0, 4096));
  CHECK(errno == EFAULT);
  set_fault_plan(std::nullopt);
  CHECK(mem.discard(0, 4096));
  CHECK(mem.discard(0, 4096));
}
