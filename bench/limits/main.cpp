// hvmm_limits: what this host allows at best for shrink (MADV_DONTNEED of memory only this process
// touched, at once or 2 MiB / 4 KiB per call, and of memory a KVM guest touched and mapped), install
// (MADV_POPULATE_WRITE of 2 MiB) and reuse (first touch of never-used THP memory). Prints one JSON object.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <numeric>
#include <string>
#include <vector>

#include "abi/exit_status.hpp"
#include "bench/limits/guest_mapped.hpp"
#include "bench/limits/probes.hpp"
#include "bench/limits/thp_mapping.hpp"

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
  unsigned gib = 4, reps = 3, frames = 512, steps_4k_mib = 1024;
  // Each probe touches --gib of memory (one region at a time); a benchmark that compares its own
  // figures with a limit measured at the same time runs only the probes it needs (the discard floors
  // between two shrinks of the inflate benchmark), since the others touch tens of GiB.
  const std::vector<std::string> all_probes{"first-touch", "dontneed", "populate", "guest-mapped", "steps"};
  std::vector<std::string> probes = all_probes;
  app.add_option("--gib", gib, "Amount of memory per probe, GiB (each probe touches it once at a time)")
      ->check(CLI::Range(1u, 14u))->capture_default_str();
  app.add_option("--reps", reps, "Repetitions of the whole-region probes")->check(CLI::Range(1u, 100u))->capture_default_str();
  app.add_option("--frames", frames, "2 MiB frames populated one at a time")->check(CLI::Range(1u, 100000u))->capture_default_str();
  app.add_option("--steps-4k-mib", steps_4k_mib, "Memory discarded 4 KiB per madvise by the steps probe, MiB (at most --gib)")
      ->check(CLI::Range(2u, 14u * 1024))->capture_default_str();
  app.add_option("--probes", probes, "Probes to run, comma-separated: first-touch, dontneed, populate, guest-mapped, steps")
      ->delimiter(',')->check(CLI::IsMember(all_probes))->default_str("all of them");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {  // one line and status 2, as hvmm does for a bad command line
    std::fprintf(stderr, "hvmm_limits: %s (see --help)\n", e.what());
    return hvmm::exit_status::kUsage;
  }

  const uint64_t bytes = uint64_t(gib) << 30;
  const auto wanted = [&](const char* name) { return std::find(probes.begin(), probes.end(), name) != probes.end(); };
  try {
    nlohmann::json j{{"gib", gib}, {"probes", probes}};
    if (wanted("first-touch")) {
      const FirstTouch ft = probe_first_touch(bytes);
      j["first_touch"] = {{"warmup_gib_s", ft.warmup_gib_s}, {"gib_s", ft.gib_s}, {"anon_huge_fraction", ft.anon_huge_fraction},
                          {"note", "one byte written per 4 KiB of a fresh MADV_HUGEPAGE mapping, after touching and unmapping "
                                   "another region of the same size (warm-up against the outer hypervisor)"}};
    }
    if (wanted("dontneed")) j["madvise_dontneed_gib_s"] = summary(probe_dontneed(bytes, reps).gib_s);
    if (wanted("populate")) {
      const Populate pop = probe_populate(bytes, frames, reps);
      j["populate_write_gib_s"] = summary(pop.whole_gib_s);
      j["populate_write_2mib_us"] = summary(pop.frame_us);
    }
    if (wanted("guest-mapped")) {
      try {
        const GuestMappedDiscard gm = probe_guest_mapped_discard(bytes, reps);
        j["madvise_dontneed_guest_mapped"] = {
            {"gib_s", summary(gm.gib_s)}, {"raw_gib_s", summary(gm.raw_gib_s)},
            {"guest_touch_gib_s", summary(gm.guest_touch_gib_s)},
            {"note", "MADV_DONTNEED of memory a KVM vCPU touched (one byte per 2 MiB, so KVM maps every "
                     "frame), interleaved with MADV_DONTNEED of the same amount touched by this process "
                     "(raw_gib_s): the discard floor with and without the hypervisor's unmapping"}};
      } catch (const std::exception& e) {
        j["madvise_dontneed_guest_mapped"] = {{"error", e.what()}};  // no KVM here: the other limits still stand
      }
    }
    if (wanted("steps")) {
      const uint64_t small = std::min<uint64_t>(bytes, uint64_t(steps_4k_mib) << 20);
      j["madvise_dontneed_2mib_steps"] = {{"gib_s", summary(probe_dontneed_steps(bytes, kHuge, reps).gib_s)},
                                          {"bytes", bytes}, {"step_bytes", kHuge}};
      j["madvise_dontneed_4kib_steps"] = {{"gib_s", summary(probe_dontneed_steps(small, kPage, reps).gib_s)},
                                          {"bytes", small}, {"step_bytes", kPage},
                                          {"note", "one madvise per 4 KiB of touched THP memory (each first one in "
                                                   "a 2 MiB frame splits it), as a 4 KiB balloon discards"}};
    }
    std::puts(j.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hvmm_limits: %s\n", e.what());
    return 1;
  }
  return 0;
}
