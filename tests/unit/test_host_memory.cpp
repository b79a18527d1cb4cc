// The admission check's inputs and wording (issue 13, defect 7).
#include <catch2/catch.hpp>

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
