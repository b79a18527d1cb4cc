#include "vmm/mechanisms/balloon.hpp"

#include <fmt/format.h>

#include "vmm/api/size_parse.hpp"

namespace hvmm {

// Counts what goes back to the host; reported blocks are discarded only in automatic mode. Whole
// 2 MiB frames of a 4 KiB balloon (Why::frame) were counted when their pages went in: discarded
// again whole, not counted again.
class BalloonMechanism::Backend final : public virtio::BalloonBackend {
 public:
  explicit Backend(const GuestMemory& mem) : mem_(mem) {}
  bool discard(uint64_t gpa, uint64_t len, Why why) override {
    if (why == Why::report && !auto_.load(std::memory_order_relaxed)) {
      acked_report_bytes.fetch_add(len, std::memory_order_relaxed);
      return true;  // acknowledged, memory kept: free page reporting is the --auto-reclaim mode
    }
    if (!mem_.discard(gpa, len)) return false;
    if (why == Why::inflate) inflate_bytes.fetch_add(len, std::memory_order_relaxed);
    if (why == Why::report) report_bytes.fetch_add(len, std::memory_order_relaxed);
    return true;
  }
  void set_auto(bool on) { auto_.store(on, std::memory_order_relaxed); }
  bool auto_on() const { return auto_.load(std::memory_order_relaxed); }

  std::atomic<uint64_t> inflate_bytes{0}, report_bytes{0}, acked_report_bytes{0};

 private:
  const GuestMemory& mem_;
  std::atomic<bool> auto_{false};
};

BalloonMechanism::BalloonMechanism(Options opt) : opt_(opt) {}

BalloonMechanism::~BalloonMechanism() { stop(); }

void BalloonMechanism::attach(VmWiring& w) {
  mem_ = &w.mem;
  ram_bytes_ = w.mem.ram_bytes();
  backend_ = std::make_unique<Backend>(w.mem);
  virtio::Balloon::Options dev_opt;
  dev_opt.reporting = opt_.reporting;
  dev_opt.huge_pages = opt_.huge;
  dev_opt.deflate_on_oom = opt_.deflate_on_oom;
  balloon_ = std::make_unique<virtio::Balloon>(w.mem, *backend_, dev_opt);
  transport_ = &w.devices.add_virtio(*balloon_);
  w.service_cpus = 1;
  poller_ = std::thread([this] { stats_poller(); });
}

void BalloonMechanism::stats_poller() {
  std::unique_lock lock(poll_mu_);
  while (!poll_cv_.wait_for(lock, opt_.stats_period, [this] { return stopping_; })) {
    lock.unlock();
    balloon_->request_stats();  // hands the buffer back; the driver refills and re-queues it
    lock.lock();
  }
}

uint64_t BalloonMechanism::usable_bytes(uint32_t pages, uint64_t page_bytes) const {
  return ram_bytes_ - std::min<uint64_t>(uint64_t(pages) * page_bytes, ram_bytes_);
}

api::ResizeOutcome BalloonMechanism::resize(uint64_t target_bytes) {
  if (target_bytes > ram_bytes_)
    return api::ResizeOutcome::failure(
        fmt::format("resize to {}: more than the VM's {} of RAM", format_size(target_bytes), format_size(ram_bytes_)));
  if (!(transport_->status() & virtio::kStatusDriverOk))
    return api::ResizeOutcome::failure("the guest's balloon driver is not running (yet)");
  std::lock_guard guard(resize_mu_);
  // The balloon's page is what the driver negotiated (DRIVER_OK is set, so it is fixed): 2 MiB for
  // balloon-huge with the built-in driver, else 4 KiB. A target between two pages rounds up.
  const uint64_t page = balloon_->page_bytes();
  const auto pages = static_cast<uint32_t>((ram_bytes_ - target_bytes) / page);
  const auto start = std::chrono::steady_clock::now();
  const uint32_t host_before = balloon_->host_pages();
  const uint64_t usable_before = usable_bytes(host_before, page);
  const uint64_t to_move = (pages > host_before ? pages - host_before : host_before - pages) * page;
  const auto deadline = start + opt_.deadline_base + std::chrono::seconds(to_move >> 28);  // + 1 s per 256 MiB
  balloon_->set_target_pages(pages);
  uint32_t last = host_before;
  auto last_move = start;
  api::ResizeOutcome out;
  out.target_bytes = target_bytes;
  for (;;) {
    // The host's count is the truth; the driver's `actual` only has to agree with it (defect 4).
    const uint32_t host = balloon_->host_pages(), actual = balloon_->actual_pages();
    const auto now = std::chrono::steady_clock::now();
    if (host == pages && actual == pages) break;
    if (stop_resize_.load(std::memory_order_acquire)) {
      out.error = "the VM is stopping";
      break;
    }
    if (host != last) {
      last = host;
      last_move = now;
    } else if (now - last_move > opt_.stall_timeout || now > deadline) {
      const char* why = now > deadline ? "did not finish before its deadline" : "stopped moving";
      if (host == pages)
        out.error = fmt::format("the balloon holds the {} pages asked for, but the guest's driver says {} ({}): not reached",
                                pages, actual, why);
      else if (actual == pages)
        out.error = fmt::format(
            "the guest's driver says the balloon holds {} pages, but it gave the host {} of them ({}): a broken or lying "
            "driver",
            actual, host, why);
      else
        out.error = fmt::format(
            "the balloon {} at {} of {} pages ({} of {} in the balloon) after {} s: the guest is out of memory or its "
            "driver is stuck",
            why, host, pages, format_size(uint64_t(host) * page), format_size(uint64_t(pages) * page),
            std::chrono::duration_cast<std::chrono::seconds>(now - start).count());
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const uint64_t usable = usable_bytes(balloon_->host_pages(), page);
  out.ok = out.error.empty();
  out.elapsed_ms = ms;
  out.usable_bytes = usable;
  out.moved_bytes = usable > usable_before ? usable - usable_before : usable_before - usable;
  if (out.ok) last_resize_ms_.store(static_cast<uint64_t>(ms), std::memory_order_relaxed);
  return out;
}

api::MechanismStatus BalloonMechanism::status() {
  api::MechanismStatus out;
  api::BalloonMechanismStatus b{.device = balloon_->stats(),
                                .driver_ok = (transport_->status() & virtio::kStatusDriverOk) != 0,
                                .auto_reclaim = backend_->auto_on(),
                                .discarded_inflate_bytes = backend_->inflate_bytes.load(),
                                .discarded_report_bytes = backend_->report_bytes.load(),
                                .acknowledged_report_bytes = backend_->acked_report_bytes.load(),
                                .last_resize_ms = last_resize_ms_.load()};
  virtio::BalloonStatus& d = b.device;
  // Usable memory follows the host's own count; the guest's `actual` is reported bounded by RAM,
  // and named in guest_lies when it was beyond (defect 4).
  out.common.usable_bytes = usable_bytes(d.host_pages, d.page_bytes);
  out.common.target_bytes = ram_bytes_ - std::min<uint64_t>(uint64_t(d.target_pages) * d.page_bytes, ram_bytes_);
  if (d.guest.valid_mask & (1u << virtio::balloon::kStatMemFree))
    out.common.guest_free_bytes = std::min<uint64_t>(d.guest.value[virtio::balloon::kStatMemFree], ram_bytes_);
  const uint64_t actual_bytes = uint64_t(d.actual_pages) * d.page_bytes;
  if (actual_bytes > ram_bytes_)
    out.common.guest_lies.push_back(fmt::format("balloon actual {} exceeds the VM's {} of RAM",
                                                format_size(actual_bytes), format_size(ram_bytes_)));
  if ((d.guest.valid_mask & (1u << virtio::balloon::kStatMemFree)) && d.guest.value[virtio::balloon::kStatMemFree] > ram_bytes_)
    out.common.guest_lies.push_back("guest free memory statistic exceeds the VM's RAM");
  d.actual_pages = static_cast<uint32_t>(std::min<uint64_t>(d.actual_pages, ram_bytes_ / d.page_bytes));
  out.detail = std::move(b);
  return out;
}

void BalloonMechanism::start_auto(std::chrono::milliseconds) {
  // The guest's free page reporting sets the pace (2 s after frees); the period does not apply.
  if (backend_) backend_->set_auto(true);
}

bool BalloonMechanism::stop_auto() {
  // Reports go on (the guest negotiated them at boot); the host acknowledges them and keeps the memory.
  if (backend_) backend_->set_auto(false);
  return true;
}

std::string BalloonMechanism::status_line() {
  if (!balloon_) return name();
  const auto s = balloon_->stats();
  std::string line = fmt::format("{} {}", name(), format_size(uint64_t(s.host_pages) * s.page_bytes));
  if (s.target_pages != s.host_pages)
    line += fmt::format(" (target {})", format_size(uint64_t(s.target_pages) * s.page_bytes));
  if (backend_->auto_on()) line += fmt::format(", reported {}", format_size(backend_->report_bytes.load()));
  return line;
}

void BalloonMechanism::stop() {
  stop_resize_.store(true, std::memory_order_release);
  {
    std::lock_guard lock(poll_mu_);
    stopping_ = true;
  }
  poll_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

}  // namespace hvmm
