// hvmm_limits: what this host allows at best for shrink (MADV_DONTNEED, of memory only this process
// touched and of memory a KVM guest touched and mapped), install (MADV_POPULATE_WRITE
// of 2 MiB) and reuse (first touch of never-used THP memory). Prints one JSON object.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <numeric>

#include "bench/limits/guest_mapped.hpp"
#include "bench/limits/probes.hpp"

namespace {

nlohmann::json summary(std::vector<double> v) {
  if (v.empty()) return nullptr;
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) { return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))]; };
  return {{"mean", mean}, {"min", v.front()}, {"median", pct(0.5)}, {"p99", pct(0.99)}, {"max", v.back()},
          {"n", v.size()}};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace hvmm::limits;
  CLI::App app{"hvmm_limits: host limits for reclaim (madvise, populate, first touch), as JSON"};
  unsigned gib = 4, reps = 3, frames = 512;
  app.add_option("--gib", gib, "Amount of memory per probe, GiB (each probe touches it once at a time)")
      ->check(CLI::Range(1u, 14u))->capture_default_str();
  app.add_option("--reps", reps, "Repetitions of the whole-region probes")->check(CLI::Range(1u, 100u))->capture_default_str();
  app.add_option("--frames", frames, "2 MiB frames populated one at a time")->check(CLI::Range(1u, 100000u))->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const uint64_t bytes = uint64_t(gib) << 30;
  try {
    const FirstTouch ft = probe_first_touch(bytes);
    const Dontneed dn = probe_dontneed(bytes, reps);
    const Populate pop = probe_populate(bytes, frames, reps);
    nlohmann::json guest_mapped;
    try {
      const GuestMappedDiscard gm = probe_guest_mapped_discard(bytes, reps);
      guest_mapped = {{"gib_s", summary(gm.gib_s)}, {"raw_gib_s", summary(gm.raw_gib_s)},
                      {"guest_touch_gib_s", summary(gm.guest_touch_gib_s)},
                      {"note", "MADV_DONTNEED of memory a KVM vCPU touched (one byte per 2 MiB, so KVM maps every "
                               "frame), interleaved with MADV_DONTNEED of the same amount touched by this process "
                               "(raw_gib_s): the discard floor with and without the hypervisor's unmapping"}};
    } catch (const std::exception& e) {
      guest_mapped = {{"error", e.what()}};  // no KVM here: the other limits still stand
    }
    nlohmann::json j{
        {"gib", gib},
        {"first_touch", {{"warmup_gib_s", ft.warmup_gib_s}, {"gib_s", ft.gib_s}, {"anon_huge_fraction", ft.anon_huge_fraction},
                         {"note", "one byte written per 4 KiB of a fresh MADV_HUGEPAGE mapping, after touching and unmapping "
                                  "another region of the same size (warm-up against the outer hypervisor)"}}},
        {"madvise_dontneed_gib_s", summary(dn.gib_s)},
        {"populate_write_gib_s", summary(pop.whole_gib_s)},
        {"populate_write_2mib_us", summary(pop.frame_us)},
        {"madvise_dontneed_guest_mapped", guest_mapped},
    };
    std::puts(j.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hvmm_limits: %s\n", e.what());
    return 1;
  }
  return 0;
}
