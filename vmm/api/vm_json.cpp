#include "vmm/api/vm_json.hpp"

#include <chrono>

namespace hvmm::api {
namespace {

using nlohmann::json;

// A latency summary recorded in nanoseconds, as microseconds.
json latency_us_json(const abi::LatencyHistogram::Summary& s) {
  return {{"count", s.count}, {"p50", double(s.p50) / 1e3}, {"p99", double(s.p99) / 1e3}, {"max", double(s.max) / 1e3}};
}

json hyperalloc_json(const HyperallocMechanismStatus& m) {
  const reclaim::HyperallocStatus& h = m.host;
  if (!h.registered) return {{"registered", false}};
  const reclaim::ZoneStats& s = h.zone;
  json j{{"registered", true},
         {"soft_bytes", s.soft_bytes},
         {"hard_bytes", s.hard_bytes},
         {"reclaimed_bytes", s.reclaimed_bytes},
         {"untouched_bytes", s.untouched_bytes},
         {"soft_untouched_bytes", s.soft_untouched_bytes},
         {"hard_untouched_bytes", s.hard_untouched_bytes},
         {"installs", s.installs},
         {"first_touch_installs", s.first_touch_installs},
         {"reinstalls", s.reinstalls},
         {"redundant_installs", s.redundant_installs},
         {"hard_reclaims", s.hard_reclaims},
         {"soft_reclaims", s.soft_reclaims},
         {"returns", s.returns},
         {"anomalies", s.anomalies},
         {"discard_failures", s.discard_failures},
         {"populate_failures", s.populate_failures},
         {"invalid_accesses", m.invalid_accesses},
         {"install_latency_us", latency_us_json(s.install_latency_ns)},
         {"install_parts_us",
          {{"mutex_wait", latency_us_json(s.install_wait_ns)}, {"populate", latency_us_json(s.install_populate_ns)},
           {"populate_cpu", latency_us_json(s.install_populate_cpu_ns)}}}};
  if (h.auto_reclaim) {
    const auto& a = *h.auto_reclaim;
    j["auto_reclaim"] = {{"period_ms", a.config.period.count()},
                         {"age_scans", a.config.age_scans},
                         {"scans", a.stats.scans},
                         {"reclaimed_frames", a.stats.reclaimed_frames},
                         {"busy_ms", std::chrono::duration<double, std::milli>(a.stats.busy).count()}};
  }
  return j;
}

json balloon_json(const BalloonMechanismStatus& b) {
  namespace bl = virtio::balloon;
  const virtio::BalloonStatus& s = b.device;
  const uint64_t page = s.page_bytes;  // 4 KiB, or 2 MiB for balloon-huge; the page counts are in it
  static constexpr const char* kTagNames[bl::kStatTags] = {
      "swap_in", "swap_out", "major_faults", "minor_faults", "free_bytes", "total_bytes", "available_bytes", "disk_caches",
      "hugetlb_allocs", "hugetlb_failures", "oom_kills", "alloc_stalls", "async_scans", "direct_scans", "async_reclaims",
      "direct_reclaims"};
  json guest = json::object();
  for (unsigned t = 0; t < bl::kStatTags; t++)
    if (s.guest.valid_mask & (1u << t)) guest[kTagNames[t]] = s.guest.value[t];
  json j{{"balloon_actual_bytes", uint64_t(s.actual_pages) * page},  // as the guest wrote it, bounded by RAM
         {"balloon_host_bytes", uint64_t(s.host_pages) * page},     // what the host holds (its own count)
         {"balloon_target_bytes", uint64_t(s.target_pages) * page},
         {"page_bytes", page},
         {"driver_ok", b.driver_ok},
         {"features", s.features},
         {"auto_reclaim", b.auto_reclaim},
         {"inflated_pages", s.counters.inflated_pages},
         {"deflated_pages", s.counters.deflated_pages},
         {"reported_bytes", s.counters.reported_bytes},
         {"discarded_inflate_bytes", b.discarded_inflate_bytes},
         {"discarded_report_bytes", b.discarded_report_bytes},
         {"acknowledged_report_bytes", b.acknowledged_report_bytes},
         {"invalid_pfns", s.counters.invalid_pfns},
         {"whole_frame_discards", s.counters.whole_frame_discards},
         {"bad_chains", s.counters.bad_chains},
         {"stats_updates", s.guest.updates},
         {"last_resize_ms", b.last_resize_ms},
         {"guest_stats", guest}};
  return j;
}

json virtio_mem_json(const VirtioMemMechanismStatus& m) {
  const virtio::VirtioMemStatus& s = m.device;
  const virtio::VirtioMemCounters& c = s.counters;
  json j{{"driver_ok", m.driver_ok},
         {"boot_bytes", m.boot_bytes},
         {"block_size", s.block_size},
         {"region_addr", s.region_addr},
         {"region_size", s.region_size},
         {"usable_region_size", s.usable_region_size},
         {"plugged_bytes", s.plugged_size},
         {"requested_bytes", s.requested_size},
         {"features", s.features},
         {"memslots", m.memslots},
         {"plugged_bytes_total", m.plugged_bytes_total},
         {"unplugged_bytes_total", m.unplugged_bytes_total},
         {"slot_failures", m.slot_failures},
         {"free_reports", m.free_reports},
         {"bad_free_reports", m.bad_free_reports},
         {"last_resize_ms", m.last_resize_ms},
         {"requests",
          {{"plug", c.plug_requests},
           {"unplug", c.unplug_requests},
           {"unplug_all", c.unplug_all_requests},
           {"state", c.state_requests},
           {"acks", c.acks},
           {"nacks", c.nacks},
           {"busy", c.busy},
           {"errors", c.errors},
           {"invalid", c.invalid_requests},
           {"state_conflicts", c.state_conflicts},
           {"backend_failures", c.backend_failures},
           {"bad_buffers", c.bad_buffers},
           {"bad_chains", c.bad_chains},
           {"config_writes", c.config_writes}}}};
  if (m.auto_period_ms)
    j["auto_reclaim"] = {{"period_ms", *m.auto_period_ms},
                         {"step_bytes", m.auto_step_bytes},
                         {"grows", m.auto_grows},
                         {"shrinks", m.auto_shrinks}};
  return j;
}

}  // namespace

json to_json(const MechanismDetail& s) {
  struct Visit {
    json operator()(const NoReclaimStatus&) const { return json::object(); }
    json operator()(const HyperallocMechanismStatus& h) const { return hyperalloc_json(h); }
    json operator()(const BalloonMechanismStatus& b) const { return balloon_json(b); }
    json operator()(const VirtioMemMechanismStatus& m) const { return virtio_mem_json(m); }
  };
  return std::visit(Visit{}, s);
}

json to_json(const VmStatus& s) {
  json j;
  j["mechanism"] = s.mechanism;
  const MechanismCommon& c = s.reclaim.common;
  j["usable_bytes"] = c.usable_bytes;
  j["target_bytes"] = c.target_bytes;
  j["guest_free_bytes"] = c.guest_free_bytes ? json(*c.guest_free_bytes) : json(nullptr);
  j["guest_lies"] = c.guest_lies;
  j["detail"] = to_json(s.reclaim.detail);
  j["guest_total_bytes"] = s.guest_total_bytes;
  j["host_rss_bytes"] = s.host_rss_bytes;
  j["vcpus"] = s.vcpus;
  j["uptime_s"] = s.uptime_s;
  j["stopping"] = s.stopping;
  json cpu = json::array();
  for (const auto& c : s.vcpu_cpu) cpu.push_back({{"vcpu", c.index}, {"service", c.service}, {"cpu_s", c.cpu_s}});
  j["vcpu_cpu"] = cpu;
  j["hypercalls"] = s.hypercalls;
  j["invalid_hypercalls"] = s.invalid_hypercalls;
  j["unhandled_accesses"] = s.unhandled_accesses;
  j["barrier_waiting"] = s.barrier_waiting;
  j["barriers_passed"] = s.barriers_passed;
  if (s.mem_limit_bytes)
    j["mem_limit"] = {{"bytes", s.mem_limit_bytes}, {"applied", s.mem_limit_applied}, {"refusals", s.mem_limit_refusals}};
  return j;
}

json to_json(const ResizeOutcome& r) {
  json j{{"ok", r.ok}};
  if (!r.ok) j["error"] = r.error;
  if (r.elapsed_ms) j["elapsed_ms"] = *r.elapsed_ms;
  if (r.target_bytes) j["target_bytes"] = *r.target_bytes;
  if (r.usable_bytes) j["usable_bytes"] = *r.usable_bytes;
  if (r.moved_bytes) j["moved_bytes"] = *r.moved_bytes;
  if (const auto& p = r.shrink_parts_ms)
    j["shrink_parts_ms"] = {{"residency", p->residency}, {"cas_walk", p->cas_walk}, {"discard", p->discard}, {"other", p->other}};
  return j;
}

json to_json(const VmInfo& i) {
  json j{{"mechanism", i.mechanism},
         {"mem_bytes", i.mem_bytes},
         {"boot_mem_bytes", i.boot_mem_bytes},
         {"mem_min_bytes", i.mem_min_bytes},
         {"vcpus", i.vcpus},
         {"service_vcpus", i.service_vcpus},
         {"kernel", i.kernel},
         {"cmdline", i.cmdline},
         {"workload", i.workload},
         {"state", i.state},
         {"uptime_s", i.uptime_s}};
  j["auto_reclaim"] = i.auto_reclaim_period_ms ? json{{"enabled", true}, {"period_ms", *i.auto_reclaim_period_ms}}
                                               : json{{"enabled", false}};
  return j;
}

json to_json(const AutoReclaimOutcome& r) {
  return r.period_ms ? json{{"enabled", true}, {"period_ms", *r.period_ms}} : json{{"enabled", false}};
}

}  // namespace hvmm::api
