#include "reclaim/hyperalloc_host.hpp"

#include "base/log.hpp"

namespace hvmm::reclaim {

HyperallocHost::HyperallocHost(const GuestMemory& mem, std::vector<GpaRange> protected_ranges,
                               AutoReclaimConfig auto_cfg)
    : mem_(mem), protected_(std::move(protected_ranges)), auto_cfg_(auto_cfg) {}

HyperallocHost::~HyperallocHost() { stop(); }

bool HyperallocHost::register_zone(uint64_t gpa) {
  std::unique_lock lock(mu_);
  if (owned_zone_) {
    lock.unlock();
    log_rate_limited(refusals_.fetch_add(1) + 1, "hyperalloc: registration refused: the guest already registered a zone");
    return false;
  }
  RegistrationResult r = read_registration(mem_, gpa, protected_);
  if (!r) {
    lock.unlock();
    log_rate_limited(refusals_.fetch_add(1) + 1, "hyperalloc: registration at {:#x} refused: {}", gpa, r.error);
    return false;
  }
  owned_zone_ = std::make_unique<ZoneState>(mem_, *r.zone);
  zone_.store(owned_zone_.get(), std::memory_order_release);
  lock.unlock();
  cv_.notify_all();  // the auto-reclaim thread, if it waits for this
  return true;
}

void HyperallocHost::install(uint64_t huge_idx) {
  ZoneState* z = zone();
  if (!z)
    return log_rate_limited(early_installs_.fetch_add(1) + 1, "hyperalloc: install of huge frame {} before registration; ignored",
                            huge_idx);
  z->install(huge_idx);  // refusals are counted by the zone
}

std::optional<ResizeResult> HyperallocHost::resize(uint64_t target_usable_bytes) {
  ZoneState* z = zone();
  if (!z) return std::nullopt;
  std::lock_guard one(resize_mu_);
  ResizeResult r = z->resize(target_usable_bytes);
  std::lock_guard lock(mu_);
  target_ = target_usable_bytes;
  return r;
}

void HyperallocHost::start_auto(std::chrono::milliseconds period) {
  std::lock_guard lock(mu_);
  if (stopped_ || auto_thread_.joinable()) return;
  auto_cfg_.period = period;
  auto_thread_ = std::thread([this] { auto_thread(); });
}

void HyperallocHost::auto_thread() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return stopped_ || auto_cancel_ || owned_zone_; });
  if (stopped_ || auto_cancel_) return;
  auto_ = std::make_unique<AutoReclaim>(*owned_zone_, auto_cfg_);
  AutoReclaim& policy = *auto_;
  lock.unlock();
  policy.run();  // until stop() stops it; stop() cannot free it before joining this thread
}

void HyperallocHost::stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    if (auto_) auto_->stop();
  }
  cv_.notify_all();
  std::lock_guard join(join_mu_);
  if (auto_thread_.joinable()) auto_thread_.join();
}

void HyperallocHost::stop_auto() {
  std::lock_guard join(join_mu_);
  {
    std::lock_guard lock(mu_);
    if (!auto_thread_.joinable()) return;
    auto_cancel_ = true;
    if (auto_) auto_->stop();
  }
  cv_.notify_all();
  auto_thread_.join();
  std::lock_guard lock(mu_);
  auto_.reset();
  auto_cancel_ = false;
}

HyperallocStatus HyperallocHost::status() const {
  HyperallocStatus s;
  s.registration_refusals = refusals_.load();
  s.installs_before_registration = early_installs_.load();
  if (ZoneState* z = zone()) {
    s.registered = true;
    s.zone = z->stats();  // lock-free: never waits for a running resize
  }
  std::lock_guard lock(mu_);
  s.target_bytes = target_;
  if (auto_) s.auto_reclaim = HyperallocStatus::Auto{auto_->config(), auto_->stats()};
  return s;
}

}  // namespace hvmm::reclaim
