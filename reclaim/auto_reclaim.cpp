#include "reclaim/auto_reclaim.hpp"

#include <algorithm>

namespace hvmm::reclaim {
namespace {
using Clock = std::chrono::steady_clock;
using alloc::Child;
using alloc::Tree;
}  // namespace

AutoReclaim::AutoReclaim(ZoneState& zone, AutoReclaimConfig cfg)
    : zone_(zone), cfg_{cfg.period, std::clamp(cfg.age_scans, 1u, 255u), std::max(cfg.batch_frames, 1u)},
      age_(zone.zone().huge_frames, 0) {
  batch_.reserve(cfg_.batch_frames);
}

AutoReclaim::~AutoReclaim() { stop(); }

void AutoReclaim::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable()) return;
  stop_.store(false, std::memory_order_relaxed);
  thread_ = std::thread([this] { run(); });
}

void AutoReclaim::stop() {
  {
    std::lock_guard lk(mu_);
    stop_.store(true, std::memory_order_relaxed);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AutoReclaim::run() {
  std::unique_lock lk(mu_);
  while (!stop_requested()) {
    if (cv_.wait_for(lk, cfg_.period, [this] { return stop_requested(); })) break;
    lk.unlock();
    scan_once();
    lk.lock();
  }
}

uint64_t AutoReclaim::scan_once() {
  const auto t0 = Clock::now();
  std::lock_guard lk(scan_mu_);
  const HostZone& z = zone_.zone();
  uint64_t done = 0;
  batch_.clear();
  // Reads of the shared words only; ZoneState re-checks everything under its mutex with a CAS.
  for (uint64_t i = 0; i < z.huge_frames && !stop_requested(); ++i) {
    const uint16_t w = z.view.children[i].atomic().load(std::memory_order_relaxed);
    const uint16_t t = z.view.trees[i / alloc::kChildrenPerTree].atomic().load(std::memory_order_relaxed);
    const bool idle = Child::idle(w) && !Tree::reserved_of(t);  // what soft_reclaim's CAS will require
    if (!idle) {
      age_[i] = 0;
      continue;
    }
    if (age_[i] < 255) ++age_[i];
    if (age_[i] < cfg_.age_scans) continue;
    batch_.push_back(i);
    if (batch_.size() == cfg_.batch_frames) {
      done += zone_.soft_reclaim(batch_);
      batch_.clear();
      std::this_thread::yield();  // let installs and the guest in between batches
    }
  }
  if (!batch_.empty()) done += zone_.soft_reclaim(batch_);
  batch_.clear();
  scans_.fetch_add(1, std::memory_order_relaxed);
  reclaimed_.fetch_add(done, std::memory_order_relaxed);
  busy_ns_.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count(),
                     std::memory_order_relaxed);
  return done;
}

AutoReclaimStats AutoReclaim::stats() const {
  return {scans_.load(std::memory_order_relaxed), reclaimed_.load(std::memory_order_relaxed),
          std::chrono::nanoseconds(busy_ns_.load(std::memory_order_relaxed))};
}

}  // namespace hvmm::reclaim
