#include "vmm/mechanisms/virtio_mem.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "base/log.hpp"
#include "vmm/api/size_parse.hpp"

namespace hvmm {

// What plugging means here: a KVM memory slot per block (slot = first + block index) and the
// block's GuestMemory accessibility. Called by the device with its lock held, in a vCPU thread.
class VirtioMemMechanism::Backend final : public virtio::MemBackend {
 public:
  Backend(const GuestMemory& mem, KvmVm& kvm, uint32_t first_slot)
      : mem_(mem), kvm_(kvm), first_slot_(first_slot), region_(*mem.hotplug()), block_(mem.hotplug_block()) {}

  bool plug(uint64_t gpa, uint64_t len) override {
    if (!checked(gpa, len)) return false;
    uint64_t done = 0;
    try {
      for (; done < len; done += block_) kvm_.set_memory_region(slot(gpa + done), gpa + done, block_, hva(gpa + done));
    } catch (const std::exception& e) {
      log_rate_limited(slot_failures.fetch_add(1) + 1, "virtio-mem: plugging {:#x}: {}", gpa + done, e.what());
      remove_slots(gpa, done);
      return false;
    }
    // Slots first, then host access: a block is never accessible here without being the guest's.
    mem_.set_plugged(gpa, len, true);
    slots.fetch_add(len / block_, std::memory_order_release);
    plugged_total.fetch_add(len, std::memory_order_relaxed);
    return true;
  }

  bool unplug(uint64_t gpa, uint64_t len) override {
    if (!checked(gpa, len)) return false;
    // Guest first (no slot: its accesses become counted MMIO exits), then the host's access and the
    // memory itself (GuestMemory::set_plugged makes it inaccessible, then discards it).
    uint64_t done = remove_slots(gpa, len);
    if (done != len) {
      // Put back what was removed: the device keeps the blocks plugged and answers ERROR.
      try {
        for (uint64_t o = 0; o < done; o += block_) kvm_.set_memory_region(slot(gpa + o), gpa + o, block_, hva(gpa + o));
      } catch (const std::exception& e) {
        log_rate_limited(slot_failures.fetch_add(1) + 1, "virtio-mem: restoring slots at {:#x}: {}", gpa, e.what());
      }
      return false;
    }
    if (!mem_.set_plugged(gpa, len, false))
      log_rate_limited(discard_failures.fetch_add(1) + 1, "virtio-mem: discarding {:#x}+{:#x} failed", gpa, len);
    slots.fetch_sub(len / block_, std::memory_order_release);
    unplugged_total.fetch_add(len, std::memory_order_relaxed);
    return true;
  }

  // What is plugged now, without the device lock (a large unplug holds it): one slot per block.
  uint64_t plugged_bytes() const { return slots.load(std::memory_order_acquire) * block_; }

  std::atomic<uint64_t> slots{0}, plugged_total{0}, unplugged_total{0};
  std::atomic<uint64_t> slot_failures{0}, discard_failures{0};

 private:
  bool checked(uint64_t gpa, uint64_t len) const {
    // The device only passes block-aligned ranges of its region; a logic error otherwise.
    return len && gpa % block_ == 0 && len % block_ == 0 && gpa >= region_.gpa && gpa - region_.gpa < region_.size &&
           len <= region_.size - (gpa - region_.gpa);
  }
  uint32_t slot(uint64_t gpa) const { return first_slot_ + static_cast<uint32_t>((gpa - region_.gpa) / block_); }
  void* hva(uint64_t gpa) const { return region_.hva + (gpa - region_.gpa); }
  // Removes the slots of [gpa, gpa+len); returns how many bytes' slots are gone.
  uint64_t remove_slots(uint64_t gpa, uint64_t len) {
    uint64_t done = 0;
    try {
      for (; done < len; done += block_) kvm_.delete_memory_region(slot(gpa + done), gpa + done);
    } catch (const std::exception& e) {
      log_rate_limited(slot_failures.fetch_add(1) + 1, "virtio-mem: unplugging {:#x}: {}", gpa + done, e.what());
    }
    return done;
  }

  const GuestMemory& mem_;
  KvmVm& kvm_;
  uint32_t first_slot_;
  MemRegion region_;
  uint64_t block_;
};

VirtioMemMechanism::VirtioMemMechanism(Options opt) : opt_(opt) {}

VirtioMemMechanism::~VirtioMemMechanism() { stop(); }

void VirtioMemMechanism::attach(VmWiring& w) {
  const MemRegion* hot = w.mem.hotplug();
  if (!hot || !w.kvm) throw std::runtime_error("virtio-mem: the VM has no hot-plug region (VmConfig::hotplug_bytes)");
  const uint64_t block = w.mem.hotplug_block();
  const uint64_t blocks = hot->size / block;
  if (w.first_free_memslot >= w.memslots || blocks > w.memslots - w.first_free_memslot)
    throw std::runtime_error(fmt::format(
        "virtio-mem: the {} region needs {} KVM memory slots (one per {} block), this host's KVM has {} free; use a "
        "smaller --mem",
        format_size(hot->size), blocks, format_size(block), w.memslots - std::min(w.memslots, w.first_free_memslot)));
  boot_ = w.mem.ram_bytes();
  region_ = hot->size;
  total_ = boot_ + region_;
  step_ = opt_.auto_step ? opt_.auto_step : total_ / 16;
  step_ = std::max<uint64_t>(block, step_ / block * block);
  backend_ = std::make_unique<Backend>(w.mem, *w.kvm, w.first_free_memslot);
  virtio::VirtioMem::Options o;
  o.region_addr = hot->gpa;
  o.region_size = hot->size;
  o.block_size = block;
  dev_ = std::make_unique<virtio::VirtioMem>(w.mem, *backend_, o);
  transport_ = &w.devices.add_virtio(*dev_);
  w.service_cpus = 1;
  // Start state: everything requested, so the workload sees all of --mem from the start (as a VM
  // without reclamation would); resize or the auto policy take it down from there.
  dev_->set_requested_size(region_);
  w.devices.hypercalls().set_handler(abi::Hypercall::kVirtioMemFree, [this](const abi::HypercallRequest& r) {
    return on_free_report(r.args[0], r.args[1] != 0);
  });
}

int64_t VirtioMemMechanism::on_free_report(uint64_t free_bytes, bool urgent) {
  // The guest's word: bounded by the VM's size before anything uses it, and the lie remembered.
  free_reports_.fetch_add(1, std::memory_order_relaxed);
  if (free_bytes > total_) {
    log_rate_limited(bad_free_reports_.fetch_add(1) + 1, "virtio-mem: the guest reports {} free in a VM of {}",
                     format_size(free_bytes), format_size(total_));
    free_lie_.store(true, std::memory_order_relaxed);
    free_bytes = total_;
  }
  last_free_.store(free_bytes, std::memory_order_relaxed);
  have_free_.store(true, std::memory_order_release);
  if (!auto_on_.load(std::memory_order_acquire)) return 0;
  if (urgent) {  // the guest is out of memory: decide now rather than at the next period
    std::lock_guard lock(auto_mu_);
    auto_kick_ = true;
    last_urgent_ = std::chrono::steady_clock::now();
    auto_cv_.notify_all();
  }
  return 1;  // automatic mode: the host may grow the VM, so an allocation may wait for it
}

uint64_t VirtioMemMechanism::usable_bytes() const {
  return boot_ + std::min(backend_->plugged_bytes(), region_);
}

bool VirtioMemMechanism::driver_ok() { return transport_ && (transport_->status() & virtio::kStatusDriverOk); }

api::ResizeOutcome VirtioMemMechanism::resize(uint64_t target_bytes) {
  if (target_bytes > total_)
    return api::ResizeOutcome::failure(
        fmt::format("resize to {}: more than the VM's maximum of {}", format_size(target_bytes), format_size(total_)));
  if (target_bytes < boot_)
    return api::ResizeOutcome::failure(fmt::format("resize to {}: less than the {} of boot memory, which is never unplugged",
                                                   format_size(target_bytes), format_size(boot_)));
  if (!driver_ok()) return api::ResizeOutcome::failure("the guest's virtio-mem driver is not running (yet)");
  std::lock_guard guard(resize_mu_);
  const auto start = std::chrono::steady_clock::now();
  const uint64_t before = usable_bytes();
  const uint64_t want = boot_ + dev_->set_requested_size(target_bytes - boot_);  // rounded down to blocks
  api::ResizeOutcome out;
  out.target_bytes = target_bytes;
  uint64_t last = usable_bytes();
  auto last_move = start;
  for (;;) {
    const uint64_t now_usable = usable_bytes();
    const auto now = std::chrono::steady_clock::now();
    if (now_usable == want) break;
    if (stop_resize_.load(std::memory_order_acquire)) {
      out.error = "the VM is stopping";
      break;
    }
    if (now_usable != last) {
      last = now_usable;
      last_move = now;
    } else if (now - last_move > opt_.stall_timeout) {
      out.error = fmt::format(
          "virtio-mem stopped at {} usable of {} requested for {} s: the guest {}", format_size(now_usable),
          format_size(want), opt_.stall_timeout.count() / 1000,
          now_usable > want ? "has no more wholly free 2 MiB blocks to unplug (memory in use)" : "driver is stuck");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const uint64_t usable = usable_bytes();
  out.ok = out.error.empty();
  out.elapsed_ms = ms;
  out.usable_bytes = usable;
  out.moved_bytes = usable > before ? usable - before : before - usable;
  if (out.ok) last_resize_ms_.store(static_cast<uint64_t>(ms), std::memory_order_relaxed);
  return out;
}

api::MechanismStatus VirtioMemMechanism::status() {
  api::MechanismStatus out;
  api::VirtioMemMechanismStatus m;
  m.device = dev_->status();
  m.driver_ok = driver_ok();
  m.boot_bytes = boot_;
  m.memslots = backend_->slots.load();
  m.plugged_bytes_total = backend_->plugged_total.load();
  m.unplugged_bytes_total = backend_->unplugged_total.load();
  m.slot_failures = backend_->slot_failures.load();
  m.free_reports = free_reports_.load();
  m.bad_free_reports = bad_free_reports_.load();
  if (auto_on_.load()) {
    m.auto_period_ms = auto_period_ms_.load();
    m.auto_step_bytes = step_;
    m.auto_grows = auto_grows_.load();
    m.auto_shrinks = auto_shrinks_.load();
  }
  m.last_resize_ms = last_resize_ms_.load();
  // plugged_size is the device's own bitmap (the guest cannot lie about it); bounded anyway.
  out.common.usable_bytes = boot_ + std::min(m.device.plugged_size, region_);
  out.common.target_bytes = boot_ + std::min(m.device.requested_size, region_);
  if (m.device.plugged_size > region_) out.common.guest_lies.push_back("plugged size exceeds the virtio-mem region");
  if (have_free_.load(std::memory_order_acquire)) out.common.guest_free_bytes = last_free_.load();
  if (free_lie_.load())
    out.common.guest_lies.push_back(fmt::format("the driver reported more free memory than the VM's {}", format_size(total_)));
  out.detail = std::move(m);
  return out;
}

uint64_t VirtioMemMechanism::auto_target(uint64_t usable, uint64_t free, uint64_t step, uint64_t lo, uint64_t hi) {
  uint64_t t = usable;
  if (free < step / 2) t = usable + 2 * step;
  else if (free < step) t = usable + step;
  else if (free > 2 * step) t = usable > step ? usable - step : 0;
  return std::clamp(t, lo, std::max(lo, hi));
}

void VirtioMemMechanism::start_auto(std::chrono::milliseconds period) {
  std::lock_guard join(join_mu_);
  if (!dev_ || auto_thread_.joinable()) return;
  {
    std::lock_guard lock(auto_mu_);
    if (stopping_) return;  // stop() came first: a thread started now would never be joined
  }
  auto_period_ms_.store(static_cast<uint64_t>(period.count()));
  auto_on_.store(true, std::memory_order_release);
  auto_thread_ = std::thread([this, period] { auto_loop(period); });
}

void VirtioMemMechanism::auto_loop(std::chrono::milliseconds period) {
  // The reference's bounds: [VM/8, VM], never below boot memory.
  const uint64_t block = dev_->status().block_size;
  // --mem-min raises the lower bound (README, "The floor").
  const uint64_t lo = std::max({boot_, (total_ / 8 + block - 1) / block * block, (opt_.floor + block - 1) / block * block});
  std::unique_lock lock(auto_mu_);
  for (;;) {
    auto_cv_.wait_for(lock, period, [this] { return stopping_ || auto_cancel_ || auto_kick_; });
    if (stopping_ || auto_cancel_) return;
    // The guest ran out of memory (kicked): grow now, whatever free memory it reported — its free
    // frames may be too fragmented, or held by another CPU, for the allocation that failed.
    const bool urgent = auto_kick_;
    auto_kick_ = false;
    // No shrink for a while after the guest ran out of memory: the free memory it reports right
    // after a grow is memory it is about to use (the reference policy shrinks it away again).
    const bool hold_shrink = std::chrono::steady_clock::now() - last_urgent_ < 5 * period;
    lock.unlock();
    if (have_free_.load(std::memory_order_acquire) && driver_ok()) {
      const virtio::VirtioMemStatus s = dev_->status();
      const uint64_t usable = boot_ + std::min(s.plugged_size, region_);
      const uint64_t requested = boot_ + std::min(s.requested_size, region_);
      uint64_t t = auto_target(usable, last_free_.load(), step_, lo, total_);
      if (urgent) t = std::max(t, std::min(usable + 2 * step_, total_));
      // Grow from what is usable; shrink only once the last shrink is done (an unplug the guest
      // cannot complete must not ratchet the request further down).
      if (t > usable && t != requested) {
        dev_->set_requested_size(t - boot_);
        auto_grows_.fetch_add(1, std::memory_order_relaxed);
      } else if (t < usable && requested >= usable && !hold_shrink) {
        dev_->set_requested_size(t - boot_);
        auto_shrinks_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    lock.lock();
  }
}

std::string VirtioMemMechanism::status_line() {
  if (!dev_) return "virtio-mem";
  const uint64_t requested = boot_ + std::min(dev_->status().requested_size, region_);
  std::string line = fmt::format("virtio-mem usable {}", format_size(usable_bytes()));
  if (requested != usable_bytes()) line += fmt::format(" (requested {})", format_size(requested));
  return line;
}

void VirtioMemMechanism::stop() {
  stop_resize_.store(true, std::memory_order_release);
  {
    std::lock_guard lock(auto_mu_);
    stopping_ = true;
  }
  auto_cv_.notify_all();
  std::lock_guard join(join_mu_);
  if (auto_thread_.joinable()) auto_thread_.join();
}

bool VirtioMemMechanism::stop_auto() {
  std::lock_guard join(join_mu_);
  if (!auto_thread_.joinable()) return true;
  {
    std::lock_guard lock(auto_mu_);
    auto_cancel_ = true;
  }
  auto_cv_.notify_all();
  auto_thread_.join();
  auto_on_.store(false, std::memory_order_release);
  std::lock_guard lock(auto_mu_);
  auto_cancel_ = false;
  return true;
}

}  // namespace hvmm
