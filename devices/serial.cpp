#include "devices/serial.hpp"

#include <cstring>

namespace hvmm {

using namespace uart;

void Serial16550::bus_read(uint64_t offset, uint8_t* data, unsigned len) {
  if (len == 0) return;
  std::memset(data, 0, len);
  std::lock_guard lock(mu_);
  if (offset >= kRegs) {
    ++ignored_;
    return;
  }
  data[0] = read_reg(static_cast<unsigned>(offset));
  update_irq(false);  // reading RBR or IIR may clear the pending condition
}

void Serial16550::bus_write(uint64_t offset, const uint8_t* data, unsigned len) {
  if (len == 0) return;
  std::lock_guard lock(mu_);
  if (offset >= kRegs) {
    ++ignored_;
    return;
  }
  write_reg(static_cast<unsigned>(offset), data[0]);
}

uint8_t Serial16550::interrupt_id() const {
  // 16550 priorities: line status (never raised here) > received data > THR empty > modem status.
  if (rx_irq_enabled() && !rx_.empty()) return kIirRxData;
  if (thr_irq_enabled() && thr_irq_pending_) return kIirThrEmpty;
  return kIirNone;
}

void Serial16550::update_irq(bool new_condition) {
  if (new_condition) {
    irq_asserted_ = true;
    irq_.raise();
  } else if (irq_asserted_ && interrupt_id() == kIirNone) {
    irq_asserted_ = false;
    irq_.lower();
  }
}

bool Serial16550::receive(uint8_t byte) {
  if (rx_.size() >= kFifoSize) {
    ++dropped_;
    overrun_ = true;
    return false;
  }
  rx_.push_back(byte);
  return true;
}

uint8_t Serial16550::read_reg(unsigned reg) {
  bool dlab = lcr_ & kLcrDlab;
  switch (reg) {
    case kData:
      if (dlab) return dll_;
      if (rx_.empty()) return 0;
      {
        uint8_t b = rx_.front();
        rx_.pop_front();
        return b;
      }
    case kIer:
      return dlab ? dlm_ : ier_;
    case kIir: {
      uint8_t id = interrupt_id();
      if (id == kIirThrEmpty) thr_irq_pending_ = false;  // reading IIR acknowledges THR empty
      return id | ((fcr_ & kFcrEnable) ? kIirFifos : 0);
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr: {
      uint8_t lsr = kLsrThrEmpty | kLsrIdle;
      if (!rx_.empty()) lsr |= kLsrDataReady;
      if (overrun_) lsr |= kLsrOverrun;
      overrun_ = false;
      return lsr;
    }
    case kMsr:
      if (mcr_ & kMcrLoop)  // modem outputs wired back to the inputs
        return ((mcr_ & kMcrRts) ? kMsrCts : 0) | ((mcr_ & kMcrDtr) ? kMsrDsr : 0) |
               ((mcr_ & kMcrOut1) ? kMsrRi : 0) | ((mcr_ & kMcrOut2) ? kMsrDcd : 0);
      return kMsrDcd | kMsrDsr | kMsrCts;  // a modem that is always there
    case kScr:
      return scr_;
  }
  return 0;
}

void Serial16550::write_reg(unsigned reg, uint8_t v) {
  bool dlab = lcr_ & kLcrDlab;
  bool raise = false;
  switch (reg) {
    case kData:
      if (dlab) {
        dll_ = v;
        break;
      }
      if (mcr_ & kMcrLoop) {
        bool was_empty = rx_.empty();
        if (receive(v) && was_empty && rx_irq_enabled()) raise = true;
      } else {
        out_.serial_out(v);
      }
      // The byte left THR at once: THR is empty again, a fresh THR-empty interrupt.
      thr_irq_pending_ = true;
      if (thr_irq_enabled()) raise = true;
      break;
    case kIer:
      if (dlab) {
        dlm_ = v;
        break;
      }
      {
        uint8_t old = ier_;
        ier_ = v & kIerMask;
        // Enabling an interrupt whose condition already holds fires it (Linux relies on this for
        // THR empty when it starts transmitting).
        if ((ier_ & ~old & kIerThrEmpty)) {
          thr_irq_pending_ = true;
          raise = true;
        }
        if ((ier_ & ~old & kIerRxData) && !rx_.empty()) raise = true;
      }
      break;
    case kFcr:
      fcr_ = v & kFcrEnable;
      if (v & kFcrClearRx) rx_.clear();
      break;
    case kLcr:
      lcr_ = v;
      break;
    case kMcr:
      mcr_ = v & kMcrMask;
      break;
    case kLsr:
    case kMsr:
      break;  // read-only (factory test writes): ignored
    case kScr:
      scr_ = v;
      break;
  }
  update_irq(raise);
}

size_t Serial16550::push_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  if (mcr_ & kMcrLoop) {
    dropped_ += bytes.size();
    return 0;
  }
  bool was_empty = rx_.empty();
  size_t n = 0;
  for (uint8_t b : bytes) {
    if (!receive(b)) {
      dropped_ += bytes.size() - n - 1;  // receive() counted this one
      break;
    }
    ++n;
  }
  update_irq(n && was_empty && rx_irq_enabled());
  return n;
}

size_t Serial16550::input_space() const {
  std::lock_guard lock(mu_);
  return kFifoSize - rx_.size();
}

uint64_t Serial16550::input_dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

uint64_t Serial16550::ignored_accesses() const {
  std::lock_guard lock(mu_);
  return ignored_;
}

}  // namespace hvmm
