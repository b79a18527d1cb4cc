#include "memory/fault_injection.hpp"

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace hvmm {
namespace {

std::mutex g_mu;
std::optional<FaultPlan> g_plan;
bool g_env_read = false;
std::atomic<bool> g_active{false};  // fast path: no plan, no lock
std::atomic<uint64_t> g_calls[2];

std::optional<int> errno_named(std::string_view n) {
  if (n == "ENOMEM") return ENOMEM;
  if (n == "EFAULT") return EFAULT;
  if (n == "EINVAL") return EINVAL;
  if (n == "EAGAIN") return EAGAIN;
  if (n == "EIO") return EIO;
  if (n == "EHWPOISON") return EHWPOISON;
  return std::nullopt;
}

void read_env_locked() {
  if (g_env_read) return;
  g_env_read = true;
  const char* env = std::getenv("HVMM_FAULT_INJECT");
  if (!env || !*env) return;
  g_plan = parse_fault_plan(env);
  if (!g_plan) std::fprintf(stderr, "hvmm: HVMM_FAULT_INJECT=%s: not understood; no faults injected\n", env);
  else std::fprintf(stderr, "hvmm: test seam: injecting faults (HVMM_FAULT_INJECT=%s)\n", env);
  g_active = g_plan.has_value();
}

}  // namespace

std::optional<FaultPlan> parse_fault_plan(std::string_view text) {
  FaultPlan p;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = item.substr(0, eq), val = item.substr(eq + 1);
    if (key == "every") {
      uint32_t n = 0;
      auto [ptr, ec] = std::from_chars(val.data(), val.data() + val.size(), n);
      if (ec != std::errc() || ptr != val.data() + val.size() || n == 0) return std::nullopt;
      p.every = n;
    } else if (key == "discard" || key == "populate") {
      auto e = errno_named(val);
      if (!e) return std::nullopt;
      (key == "discard" ? p.discard_errno : p.populate_errno) = *e;
    } else {
      return std::nullopt;
    }
  }
  return p;
}

void set_fault_plan(std::optional<FaultPlan> plan) {
  std::lock_guard lock(g_mu);
  g_env_read = true;
  g_plan = plan;
  g_calls[0] = 0;
  g_calls[1] = 0;
  g_active = plan.has_value();
}

int injected_fault(FaultSite site) {
  static std::once_flag env_once;
  std::call_once(env_once, [] {
    std::lock_guard lock(g_mu);
    read_env_locked();
  });
  if (!g_active.load(std::memory_order_relaxed)) return 0;
  std::lock_guard lock(g_mu);
  if (!g_plan) return 0;
  const int err = site == FaultSite::discard ? g_plan->discard_errno : g_plan->populate_errno;
  if (!err) return 0;
  const uint64_t n = ++g_calls[site == FaultSite::discard ? 0 : 1];
  return n % g_plan->every == 0 ? err : 0;
}

}  // namespace hvmm
