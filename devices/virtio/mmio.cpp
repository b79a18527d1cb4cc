#include "devices/virtio/mmio.hpp"

#include <cstring>

namespace hvmm::virtio {

using namespace mmio_reg;

namespace {
constexpr uint64_t kTransportFeatures = kFeatureVersion1 | kFeatureIndirectDesc | kFeatureEventIdx;
bool config_access_ok(uint64_t offset, unsigned len) {
  return (len == 1 || len == 2 || len == 4 || len == 8) && offset % len == 0;
}
}  // namespace

MmioTransport::MmioTransport(const GuestMemory& mem, VirtioDevice& dev, IrqLine& irq)
    : mem_(mem), dev_(dev), irq_(irq) {
  queues_.reserve(kMaxQueues);
  for (unsigned i = 0; i < kMaxQueues; ++i) queues_.emplace_back(mem_);
  std::lock_guard g(dev_.lock());
  dev_.attach(this);
}

MmioTransport::~MmioTransport() {
  std::lock_guard g(dev_.lock());
  dev_.attach(nullptr);
}

uint64_t MmioTransport::offered_features() const { return dev_.device_features() | kTransportFeatures; }

unsigned MmioTransport::queue_count() const {
  unsigned n = dev_.num_queues();
  return n < kMaxQueues ? n : kMaxQueues;
}

Virtqueue* MmioTransport::selected_queue() {
  return queue_sel_ < queue_count() ? &queues_[queue_sel_] : nullptr;
}

MmioTransport::Target MmioTransport::classify(uint64_t offset, unsigned len) const {
  if (len > 8 || offset >= kSlotSize || len > kSlotSize - offset) return Target::kBad;
  if (offset >= kConfig) return config_access_ok(offset, len) ? Target::kConfig : Target::kBad;
  return len == 4 && offset % 4 == 0 ? Target::kRegister : Target::kBad;
}

void MmioTransport::mmio_read(uint64_t offset, uint8_t* data, unsigned len) {
  if (!data || len == 0) return;
  std::memset(data, 0, len);
  std::lock_guard g(dev_.lock());
  switch (classify(offset, len)) {
    case Target::kBad:
      ++counters_.bad_accesses;
      return;
    case Target::kConfig:
      dev_.read_config(uint32_t(offset - kConfig), data, len);
      return;
    case Target::kRegister: {
      uint32_t v = read_reg(uint32_t(offset));
      std::memcpy(data, &v, 4);
      return;
    }
  }
}

void MmioTransport::mmio_write(uint64_t offset, const uint8_t* data, unsigned len) {
  if (!data || len == 0) return;
  std::lock_guard g(dev_.lock());
  switch (classify(offset, len)) {
    case Target::kBad:
      ++counters_.bad_accesses;
      return;
    case Target::kConfig:
      dev_.write_config(uint32_t(offset - kConfig), data, len);
      return;
    case Target::kRegister: {
      uint32_t v;
      std::memcpy(&v, data, 4);
      write_reg(uint32_t(offset), v);
      return;
    }
  }
}

uint32_t MmioTransport::read_reg(uint32_t reg) {
  switch (reg) {
    case kMagicValue: return kMagic;
    case kVersion: return kVersion2;
    case kDeviceId: return dev_.device_id();
    case kVendorId: return kVendor;
    case kDeviceFeatures: {
      uint64_t f = offered_features();
      return device_features_sel_ == 0 ? uint32_t(f) : device_features_sel_ == 1 ? uint32_t(f >> 32) : 0;
    }
    case kQueueNumMax: return queue_sel_ < queue_count() ? dev_.queue_max_size(queue_sel_) : 0;
    case kQueueReady: {
      Virtqueue* q = selected_queue();
      return q && q->ready() ? 1 : 0;
    }
    case kInterruptStatus: return int_status_;
    case kStatus: return status_;
    case kConfigGeneration: return config_generation_;
    // No shared memory regions: a non-existent region has length (and base) -1.
    case kShmLenLow: case kShmLenHigh: case kShmBaseLow: case kShmBaseHigh: return 0xffffffff;
    default:
      ++counters_.bad_accesses;  // write-only or unassigned register
      return 0;
  }
}

void MmioTransport::write_reg(uint32_t reg, uint32_t v) {
  // Queue registers may only change while the selected queue is not ready.
  auto queue_field = [&](auto&& set) {
    Virtqueue* q = selected_queue();
    if (!q || q->ready()) {
      ++counters_.bad_accesses;
      return;
    }
    set(setup_[queue_sel_]);
  };
  auto lo = [](uint64_t& f, uint32_t v) { f = (f & ~uint64_t{0xffffffff}) | v; };
  auto hi = [](uint64_t& f, uint32_t v) { f = (f & 0xffffffff) | uint64_t{v} << 32; };

  switch (reg) {
    case kDeviceFeaturesSel: device_features_sel_ = v; return;
    case kDriverFeaturesSel: driver_features_sel_ = v; return;
    case kDriverFeatures:
      if (status_ & kStatusFeaturesOk) {  // too late: features are fixed
        ++counters_.bad_accesses;
      } else if (driver_features_sel_ == 0) {
        lo(driver_features_, v);
      } else if (driver_features_sel_ == 1) {
        hi(driver_features_, v);
      } else if (v) {
        driver_features_junk_ = true;  // no such features offered: FEATURES_OK will be refused
      }
      return;
    case kQueueSel: queue_sel_ = v; return;
    case kQueueNum: queue_field([&](QueueSetup& s) { s.num = v > 0xffff ? 0 : uint16_t(v); }); return;
    case kQueueDescLow: queue_field([&](QueueSetup& s) { lo(s.desc, v); }); return;
    case kQueueDescHigh: queue_field([&](QueueSetup& s) { hi(s.desc, v); }); return;
    case kQueueDriverLow: queue_field([&](QueueSetup& s) { lo(s.driver, v); }); return;
    case kQueueDriverHigh: queue_field([&](QueueSetup& s) { hi(s.driver, v); }); return;
    case kQueueDeviceLow: queue_field([&](QueueSetup& s) { lo(s.device, v); }); return;
    case kQueueDeviceHigh: queue_field([&](QueueSetup& s) { hi(s.device, v); }); return;
    case kQueueReady: set_queue_ready(v); return;
    case kQueueNotify: notify(v); return;
    case kInterruptAck:
      if (int_status_ && !(int_status_ &= ~v)) irq_.lower();
      return;
    case kStatus: write_status(v); return;
    case kShmSel: return;  // no regions; reads say so
    default: ++counters_.bad_accesses; return;
  }
}

void MmioTransport::write_status(uint32_t v) {
  if (v == 0) {
    reset();
    return;
  }
  // Bits only go away through reset; NEEDS_RESET is the device's, the driver cannot set it.
  if (((status_ & ~kStatusNeedsReset) & ~v) || v > 0xff) {
    ++counters_.refused_status;
    return;
  }
  uint32_t add = v & ~status_ & ~kStatusNeedsReset;
  uint32_t next = status_ | add;
  bool out_of_order = ((add & kStatusDriver) && !(next & kStatusAcknowledge)) ||
                      ((add & kStatusFeaturesOk) && !(next & kStatusDriver)) ||
                      ((add & kStatusDriverOk) && !(next & kStatusFeaturesOk));
  if (out_of_order) {
    ++counters_.refused_status;
    return;
  }
  if (add & kStatusFeaturesOk) {
    uint64_t f = driver_features_;
    bool ok = !driver_features_junk_ && !(f & ~offered_features()) && (f & kFeatureVersion1) &&
              dev_.accept_features(f);
    if (!ok) {
      // The driver reads Status back and sees FEATURES_OK missing (§3.1.1 step 6).
      ++counters_.refused_features;
      add &= ~kStatusFeaturesOk;
      if (add & kStatusDriverOk) {
        ++counters_.refused_status;
        add &= ~kStatusDriverOk;
      }
    }
  }
  status_ |= add;
  if (add & kStatusDriverOk) dev_.activate();
}

void MmioTransport::set_queue_ready(uint32_t v) {
  Virtqueue* q = selected_queue();
  if (!q || v > 1) {
    ++counters_.bad_accesses;
    return;
  }
  if (v == 0) {
    q->reset();
    return;
  }
  if (q->ready()) return;
  if (!(status_ & kStatusFeaturesOk) || (status_ & kStatusNeedsReset)) {
    ++counters_.refused_queue_setup;
    return;
  }
  const QueueSetup& s = setup_[queue_sel_];
  QueueConfig cfg{s.num, s.desc, s.driver, s.device, (driver_features_ & kFeatureEventIdx) != 0,
                  (driver_features_ & kFeatureIndirectDesc) != 0};
  if (q->enable(cfg, dev_.queue_max_size(queue_sel_)) != QueueError::none) {
    // The queue stays not ready (the driver reads QueueReady back as 0) and the device says it
    // needs a reset: a driver that ignores the read-back still learns about it.
    ++counters_.refused_queue_setup;
    device_error();
  }
}

void MmioTransport::notify(uint32_t index) {
  if (!(status_ & kStatusDriverOk) || (status_ & kStatusNeedsReset) || index >= queue_count() ||
      !queues_[index].ready()) {
    ++counters_.ignored_notifies;
    return;
  }
  dev_.queue_notify(index);
  for (unsigned i = 0; i < queue_count(); ++i) {
    if (queues_[i].broken() && !(status_ & kStatusNeedsReset)) {
      ++counters_.queue_errors;
      device_error();
    }
  }
}

void MmioTransport::reset() {
  status_ = 0;
  if (int_status_) irq_.lower();
  int_status_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  driver_features_ = 0;
  driver_features_junk_ = false;
  setup_.fill({});
  for (auto& q : queues_) q.reset();
  dev_.reset();
}

void MmioTransport::interrupt(uint32_t bits) {
  int_status_ |= bits;
  irq_.raise();
}

Virtqueue* MmioTransport::queue(unsigned index) {
  if (index >= queue_count() || !(status_ & kStatusDriverOk) || (status_ & kStatusNeedsReset))
    return nullptr;
  Virtqueue& q = queues_[index];
  return q.ready() && !q.broken() ? &q : nullptr;
}

void MmioTransport::notify_used(unsigned index) {
  if (index < queue_count() && queues_[index].should_interrupt()) interrupt(kIntUsedBuffer);
}

void MmioTransport::config_changed() {
  ++config_generation_;
  if (status_ & kStatusDriverOk) interrupt(kIntConfigChange);
}

void MmioTransport::device_error() {
  if (status_ & kStatusNeedsReset) return;
  status_ |= kStatusNeedsReset;
  ++counters_.device_errors;
  if (status_ & kStatusDriverOk) interrupt(kIntConfigChange);
}

uint32_t MmioTransport::status() {
  std::lock_guard g(dev_.lock());
  return status_;
}

MmioCounters MmioTransport::counters() {
  std::lock_guard g(dev_.lock());
  return counters_;
}

}  // namespace hvmm::virtio
