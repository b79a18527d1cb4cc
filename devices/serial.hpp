// 16550A UART as a pure state machine (modelled on rust-vmm vm-superio's Serial, with real 16550
// interrupt identification priorities). Transmit is instantaneous: every THR byte goes straight to
// a SerialSink, so THR and the transmitter are always empty. Receive goes through a bounded FIFO
// fed by push_input(). Registers (offsets 0..7 from the base, e.g. port 0x3f8):
//   0 RBR (read) / THR (write), or DLL when LCR.DLAB    4 MCR (bit 4: loopback)
//   1 IER, or DLM when LCR.DLAB                          5 LSR (read-only)
//   2 IIR (read) / FCR (write)                           6 MSR (read-only)
//   3 LCR                                                7 SCR
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>

#include "devices/bus.hpp"
#include "devices/irq.hpp"

namespace hvmm {

namespace uart {
inline constexpr unsigned kData = 0, kIer = 1, kIir = 2, kFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                          kScr = 7, kRegs = 8;
inline constexpr uint8_t kIerRxData = 0x01, kIerThrEmpty = 0x02, kIerMask = 0x0F;
inline constexpr uint8_t kIirNone = 0x01, kIirThrEmpty = 0x02, kIirRxData = 0x04, kIirFifos = 0xC0;
inline constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02;
inline constexpr uint8_t kLcrDlab = 0x80;
inline constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10,
                         kMcrMask = 0x1F;
inline constexpr uint8_t kLsrDataReady = 0x01, kLsrOverrun = 0x02, kLsrThrEmpty = 0x20, kLsrIdle = 0x40;
inline constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
}  // namespace uart

// Where transmitted bytes go (stdout, a log file, a test buffer). Called with the UART lock held.
struct SerialSink {
  virtual ~SerialSink() = default;
  virtual void serial_out(uint8_t byte) = 0;
};

class Serial16550 final : public BusDevice {
 public:
  static constexpr size_t kFifoSize = 64;

  // Both must outlive the UART. The line is raised on every new interrupt condition (usable as an
  // edge: a pulse per raise) and lowered once nothing is pending any more (for a level line).
  Serial16550(SerialSink& out, IrqLine& irq) : out_(out), irq_(irq) {}

  // Byte registers: only data[0] is a register access; extra bytes of a wider access read as 0 and
  // are ignored on write. Offsets >= 8 read 0 and are counted as ignored accesses.
  void bus_read(uint64_t offset, uint8_t* data, unsigned len) override;
  void bus_write(uint64_t offset, const uint8_t* data, unsigned len) override;

  // Host input (console keyboard). Queues as many bytes as fit and returns that count; the rest is
  // dropped, counted, and flagged as overrun in LSR. In loopback mode the line is disconnected from
  // the host, so everything is dropped. Raises the IRQ when received-data interrupts are enabled.
  size_t push_input(std::span<const uint8_t> bytes);

  size_t input_space() const;
  uint64_t input_dropped() const;
  uint64_t ignored_accesses() const;

 private:
  uint8_t read_reg(unsigned reg);
  void write_reg(unsigned reg, uint8_t v);
  uint8_t interrupt_id() const;
  bool rx_irq_enabled() const { return ier_ & uart::kIerRxData; }
  bool thr_irq_enabled() const { return ier_ & uart::kIerThrEmpty; }
  // Queues one received byte; false (and overrun) when the FIFO is full.
  bool receive(uint8_t byte);
  // After a state change: raise for a new condition, lower when nothing is pending any more.
  void update_irq(bool new_condition);

  SerialSink& out_;
  IrqLine& irq_;
  mutable std::mutex mu_;
  std::deque<uint8_t> rx_;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0x03;  // 8N1
  uint8_t mcr_ = uart::kMcrOut2;
  uint8_t fcr_ = 0;
  uint8_t scr_ = 0;
  uint8_t dll_ = 12, dlm_ = 0;  // divisor 12: 9600 baud
  bool overrun_ = false;        // LSR.OE, cleared by reading LSR
  bool thr_irq_pending_ = false;  // THR-empty interrupt latched, cleared by IIR read or THR write
  bool irq_asserted_ = false;     // raise() called and no lower() since
  uint64_t dropped_ = 0;
  uint64_t ignored_ = 0;
};

}  // namespace hvmm
