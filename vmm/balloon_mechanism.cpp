#include "vmm/balloon_mechanism.hpp"

#include <fmt/format.h>

#include "vmm/api/size_parse.hpp"
#include "vmm/layout.hpp"

namespace hvmm {
namespace {
constexpr uint32_t kIrq = 5;  // FDT only: the built-in guest takes no interrupts (wake_all stands in)
constexpr uint64_t kPage = virtio::balloon::kPageSize;
}  // namespace

// Counts what goes back to the host; reported blocks are discarded only in automatic mode.
class BalloonMechanism::Backend final : public virtio::BalloonBackend {
 public:
  explicit Backend(const GuestMemory& mem) : mem_(mem) {}
  bool discard(uint64_t gpa, uint64_t len, Why why) override {
    if (why == Why::report && !auto_.load(std::memory_order_relaxed)) {
      acked_report_bytes.fetch_add(len, std::memory_order_relaxed);
      return true;  // acknowledged, memory kept: free page reporting is the --auto-reclaim mode
    }
    if (!mem_.discard(gpa, len)) return false;
    (why == Why::inflate ? inflate_bytes : report_bytes).fetch_add(len, std::memory_order_relaxed);
    return true;
  }
  void set_auto(bool on) { auto_.store(on, std::memory_order_relaxed); }
  bool auto_on() const { return auto_.load(std::memory_order_relaxed); }

  std::atomic<uint64_t> inflate_bytes{0}, report_bytes{0}, acked_report_bytes{0};

 private:
  const GuestMemory& mem_;
  std::atomic<bool> auto_{false};
};

// The device's interrupt: wake every vCPU blocked in a wait hypercall (the driver re-checks).
class BalloonMechanism::Irq final : public virtio::IrqLine {
 public:
  explicit Irq(HypercallPort& hc) : hc_(hc) {}
  void raise() override { hc_.wake_all(); }

 private:
  HypercallPort& hc_;
};

// Bus adapter for the device's virtio-mmio slot.
class BalloonMechanism::Slot final : public BusDevice {
 public:
  explicit Slot(virtio::MmioTransport& t) : t_(t) {}
  void bus_read(uint64_t offset, uint8_t* data, unsigned len) override { t_.mmio_read(offset, data, len); }
  void bus_write(uint64_t offset, const uint8_t* data, unsigned len) override { t_.mmio_write(offset, data, len); }

 private:
  virtio::MmioTransport& t_;
};

BalloonMechanism::BalloonMechanism(Options opt) : opt_(opt) {}

BalloonMechanism::~BalloonMechanism() { stop(); }

void BalloonMechanism::attach(VmWiring& w) {
  mem_ = &w.mem;
  ram_bytes_ = w.mem.ram_bytes();
  backend_ = std::make_unique<Backend>(w.mem);
  virtio::Balloon::Options dev_opt;
  dev_opt.reporting = opt_.reporting;
  balloon_ = std::make_unique<virtio::Balloon>(w.mem, *backend_, dev_opt);
  irq_ = std::make_unique<Irq>(w.hypercalls);
  transport_ = std::make_unique<virtio::MmioTransport>(w.mem, *balloon_, *irq_);
  slot_ = std::make_unique<Slot>(*transport_);
  w.mmio.add(layout::kVirtioMmioBase, layout::kVirtioMmioSlot, slot_.get());
  w.fdt.virtio.push_back({layout::kVirtioMmioBase, layout::kVirtioMmioSlot, kIrq});
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

nlohmann::json BalloonMechanism::resize(uint64_t target_bytes) {
  if (!balloon_) return {{"ok", false}, {"error", "the balloon is not attached"}};
  if (target_bytes > ram_bytes_)
    return {{"ok", false},
            {"error", fmt::format("resize to {}: more than the VM's {} of RAM", format_size(target_bytes), format_size(ram_bytes_))}};
  if (!(transport_->status() & virtio::kStatusDriverOk))
    return {{"ok", false}, {"error", "the guest's balloon driver is not running (yet)"}};
  std::lock_guard guard(resize_mu_);
  const auto pages = static_cast<uint32_t>((ram_bytes_ - target_bytes) / kPage);
  const auto start = std::chrono::steady_clock::now();
  balloon_->set_target_pages(pages);
  uint32_t last = balloon_->actual_pages();
  auto last_move = start;
  for (;;) {
    const uint32_t actual = balloon_->actual_pages();
    const auto now = std::chrono::steady_clock::now();
    if (actual == pages) break;
    if (actual != last) {
      last = actual;
      last_move = now;
    } else if (now - last_move > opt_.stall_timeout) {
      return {{"ok", false},
              {"error", fmt::format("the balloon stopped at {} of {} pages ({} of {} in the balloon) for {} s: the guest is out of "
                                    "memory or its driver is stuck",
                                    actual, pages, format_size(uint64_t(actual) * kPage), format_size(uint64_t(pages) * kPage),
                                    opt_.stall_timeout.count() / 1000)},
              {"actual_bytes", ram_bytes_ - uint64_t(actual) * kPage}};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  last_resize_ms_.store(static_cast<uint64_t>(ms), std::memory_order_relaxed);
  return {{"ok", true}, {"elapsed_ms", ms}, {"actual_bytes", ram_bytes_ - uint64_t(pages) * kPage}};
}

nlohmann::json BalloonMechanism::status() {
  if (!balloon_) return nlohmann::json::object();
  const auto s = balloon_->stats();
  nlohmann::json guest = nlohmann::json::object();
  static constexpr const char* kTagNames[virtio::balloon::kStatTags] = {
      "swap_in", "swap_out", "major_faults", "minor_faults", "free_bytes", "total_bytes", "available_bytes", "disk_caches",
      "hugetlb_allocs", "hugetlb_failures", "oom_kills", "alloc_stalls", "async_scans", "direct_scans", "async_reclaims",
      "direct_reclaims"};
  for (unsigned t = 0; t < virtio::balloon::kStatTags; t++)
    if (s.guest.valid_mask & (1u << t)) guest[kTagNames[t]] = s.guest.value[t];
  nlohmann::json j = {
      {"balloon_actual_bytes", uint64_t(s.actual_pages) * kPage},
      {"balloon_target_bytes", uint64_t(s.target_pages) * kPage},
      {"target_bytes", ram_bytes_ - uint64_t(s.target_pages) * kPage},
      {"driver_ok", (transport_->status() & virtio::kStatusDriverOk) != 0},
      {"features", s.features},
      {"auto_reclaim", backend_->auto_on()},
      {"inflated_pages", s.counters.inflated_pages},
      {"deflated_pages", s.counters.deflated_pages},
      {"reported_bytes", s.counters.reported_bytes},
      {"discarded_inflate_bytes", backend_->inflate_bytes.load()},
      {"discarded_report_bytes", backend_->report_bytes.load()},
      {"acknowledged_report_bytes", backend_->acked_report_bytes.load()},
      {"invalid_pfns", s.counters.invalid_pfns},
      {"bad_chains", s.counters.bad_chains},
      {"stats_updates", s.guest.updates},
      {"last_resize_ms", last_resize_ms_.load()},
      {"guest_stats", guest},
  };
  if (s.guest.valid_mask & (1u << virtio::balloon::kStatMemFree)) j["guest_free_bytes"] = s.guest.value[virtio::balloon::kStatMemFree];
  return j;
}

void BalloonMechanism::start_auto(std::chrono::milliseconds) {
  // The guest's free page reporting sets the pace (2 s after frees); the period does not apply.
  if (backend_) backend_->set_auto(true);
}

std::string BalloonMechanism::status_line() {
  if (!balloon_) return "balloon";
  const auto s = balloon_->stats();
  std::string line = fmt::format("balloon {}", format_size(uint64_t(s.actual_pages) * kPage));
  if (s.target_pages != s.actual_pages) line += fmt::format(" (target {})", format_size(uint64_t(s.target_pages) * kPage));
  if (backend_->auto_on()) line += fmt::format(", reported {}", format_size(backend_->report_bytes.load()));
  return line;
}

void BalloonMechanism::stop() {
  {
    std::lock_guard lock(poll_mu_);
    stopping_ = true;
  }
  poll_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

}  // namespace hvmm
