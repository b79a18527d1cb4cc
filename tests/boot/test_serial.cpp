#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "devices/serial.hpp"

using namespace hvmm;
using namespace hvmm::uart;

namespace {
struct Capture : SerialSink {
  std::string out;
  void serial_out(uint8_t b) override { out.push_back(static_cast<char>(b)); }
};
struct CountingIrq : IrqLine {
  int raised = 0, lowered = 0;
  bool level = false;  // as a level-triggered line would be
  void raise() override {
    ++raised;
    level = true;
  }
  void lower() override {
    ++lowered;
    level = false;
  }
};
struct Fixture {
  Capture sink;
  CountingIrq irq;
  Serial16550 uart{sink, irq};
  uint8_t rd(unsigned reg) {
    uint8_t v = 0xAA;
    uart.bus_read(reg, &v, 1);
    return v;
  }
  void wr(unsigned reg, uint8_t v) { uart.bus_write(reg, &v, 1); }
  size_t push(const std::string& s) {
    return uart.push_input({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
};
}  // namespace

TEST_CASE("UART transmits THR bytes to the sink") {
  Fixture f;
  for (char c : std::string("hi\n")) f.wr(kData, static_cast<uint8_t>(c));
  CHECK(f.sink.out == "hi\n");
  CHECK(f.irq.raised == 0);  // THR-empty interrupt not enabled
}

TEST_CASE("UART LSR: transmitter always empty, data ready follows the FIFO") {
  Fixture f;
  CHECK(f.rd(kLsr) == (kLsrThrEmpty | kLsrIdle));
  f.push("a");
  CHECK(f.rd(kLsr) == (kLsrThrEmpty | kLsrIdle | kLsrDataReady));
  CHECK(f.rd(kData) == 'a');
  CHECK((f.rd(kLsr) & kLsrDataReady) == 0);
  CHECK(f.rd(kData) == 0);  // empty RBR reads 0
  f.wr(kLsr, 0);            // read-only: ignored
  CHECK(f.rd(kLsr) == (kLsrThrEmpty | kLsrIdle));
}

TEST_CASE("UART divisor latch behind LCR.DLAB") {
  Fixture f;
  CHECK(f.rd(kLcr) == 0x03);
  f.wr(kIer, 0x05);
  f.wr(kLcr, kLcrDlab | 0x03);
  CHECK(f.rd(kData) == 12);  // default divisor 12 (9600 baud)
  CHECK(f.rd(kIer) == 0);
  f.wr(kData, 0x01);  // 115200 baud
  f.wr(kIer, 0x00);
  CHECK(f.rd(kData) == 0x01);
  CHECK(f.sink.out.empty());  // DLL writes are not output
  f.wr(kLcr, 0x03);
  CHECK(f.rd(kIer) == 0x05);  // IER untouched by the DLM write
  f.wr(kData, 'z');
  CHECK(f.sink.out == "z");
  f.wr(kLcr, kLcrDlab);
  CHECK(f.rd(kData) == 0x01);
}

TEST_CASE("UART loopback: THR feeds RBR, modem lines wired back, host input cut off") {
  Fixture f;
  CHECK(f.rd(kMsr) == (kMsrDcd | kMsrDsr | kMsrCts));
  f.wr(kMcr, kMcrLoop);
  CHECK(f.rd(kMsr) == 0);
  f.wr(kMcr, kMcrLoop | kMcrRts | kMcrOut2);
  CHECK(f.rd(kMsr) == (kMsrCts | kMsrDcd));
  f.wr(kMcr, kMcrLoop | kMcrDtr | kMcrOut1);
  CHECK(f.rd(kMsr) == (kMsrDsr | kMsrRi));
  f.wr(kData, 0x5A);
  CHECK(f.sink.out.empty());
  CHECK((f.rd(kLsr) & kLsrDataReady) != 0);
  CHECK(f.rd(kData) == 0x5A);
  CHECK(f.push("x") == 0);
  CHECK(f.uart.input_dropped() == 1);
  f.wr(kMcr, kMcrOut2);
  f.wr(kData, 'o');
  CHECK(f.sink.out == "o");
  CHECK(f.rd(kMcr) == kMcrOut2);
}

TEST_CASE("UART scratch register") {
  Fixture f;
  CHECK(f.rd(kScr) == 0);
  f.wr(kScr, 0x42);
  CHECK(f.rd(kScr) == 0x42);
  f.wr(kScr, 0xFF);
  CHECK(f.rd(kScr) == 0xFF);
}

TEST_CASE("UART input FIFO is bounded and counts overflow") {
  Fixture f;
  CHECK(f.uart.input_space() == Serial16550::kFifoSize);
  std::string big(Serial16550::kFifoSize + 10, 'q');
  big[0] = 'A';
  CHECK(f.push(big) == Serial16550::kFifoSize);
  CHECK(f.uart.input_dropped() == 10);
  CHECK(f.uart.input_space() == 0);
  CHECK(f.rd(kLsr) == (kLsrThrEmpty | kLsrIdle | kLsrDataReady | kLsrOverrun));
  CHECK((f.rd(kLsr) & kLsrOverrun) == 0);  // cleared by reading LSR
  CHECK(f.rd(kData) == 'A');
  size_t n = 1;
  while (f.rd(kLsr) & kLsrDataReady) {
    CHECK(f.rd(kData) == 'q');
    ++n;
  }
  CHECK(n == Serial16550::kFifoSize);

  f.push("abc");
  f.wr(kFcr, kFcrEnable | kFcrClearRx);
  CHECK((f.rd(kLsr) & kLsrDataReady) == 0);
  CHECK((f.rd(kIir) & kIirFifos) == kIirFifos);
}

TEST_CASE("UART interrupts: IIR priorities and IRQ edges") {
  Fixture f;
  CHECK(f.rd(kIir) == kIirNone);
  f.push("1");
  CHECK(f.irq.raised == 0);  // not enabled
  CHECK(f.rd(kIir) == kIirNone);

  f.wr(kIer, kIerRxData);  // enabling with data waiting fires at once
  CHECK(f.irq.raised == 1);
  CHECK(f.rd(kIir) == kIirRxData);
  f.push("2");  // FIFO already non-empty: no new edge
  CHECK(f.irq.raised == 1);
  CHECK(f.rd(kData) == '1');
  CHECK(f.irq.level);
  CHECK(f.rd(kIir) == kIirRxData);
  CHECK(f.rd(kData) == '2');
  CHECK_FALSE(f.irq.level);  // FIFO drained: line lowered
  CHECK(f.irq.lowered == 1);
  CHECK(f.rd(kIir) == kIirNone);
  f.push("3");
  CHECK(f.irq.raised == 2);
  CHECK(f.irq.level);
  CHECK(f.rd(kData) == '3');
  CHECK_FALSE(f.irq.level);

  f.wr(kIer, kIerRxData | kIerThrEmpty);  // THR is empty: THRE interrupt fires
  CHECK(f.irq.raised == 3);
  f.push("4");
  CHECK(f.irq.raised == 4);
  CHECK(f.rd(kIir) == kIirRxData);  // received data outranks THR empty
  CHECK(f.rd(kData) == '4');
  CHECK(f.irq.level);  // THR empty still pending
  CHECK(f.rd(kIir) == kIirThrEmpty);
  CHECK_FALSE(f.irq.level);
  CHECK(f.rd(kIir) == kIirNone);  // reading IIR acknowledged THR empty

  f.wr(kData, '!');  // THR empties again at once
  CHECK(f.irq.raised == 5);
  CHECK(f.rd(kIir) == kIirThrEmpty);
  CHECK(f.rd(kIir) == kIirNone);
  f.wr(kData, '?');
  CHECK(f.irq.level);
  f.wr(kIer, 0);  // disabling hides the latched condition
  CHECK_FALSE(f.irq.level);
  CHECK(f.rd(kIir) == kIirNone);
  CHECK(f.sink.out == "!?");
}

TEST_CASE("UART tolerates odd guest accesses") {
  Fixture f;
  uint8_t buf[4] = {1, 2, 3, 4};
  f.uart.bus_read(8, buf, 4);
  CHECK(buf[0] == 0);
  f.uart.bus_write(100, buf, 1);
  CHECK(f.uart.ignored_accesses() == 2);
  f.uart.bus_read(kScr, buf, 0);  // zero length: nothing
  f.wr(kScr, 7);
  f.uart.bus_read(kScr, buf, 4);  // wide read: register in byte 0, zeros after
  CHECK(buf[0] == 7);
  CHECK(buf[1] == 0);
  CHECK(buf[3] == 0);
  f.wr(kIer, 0xFF);
  CHECK(f.rd(kIer) == kIerMask);
}

TEST_CASE("UART behind the bus under concurrent vCPU and input threads") {
  // Meant for the TSan build (HVMM_SANITIZE=thread); the counts must add up in any build.
  Fixture f;
  Bus bus;
  bus.add(0x3F8, kRegs, &f.uart);
  constexpr int kThreads = 3, kBytes = 2000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < kBytes; ++i) {
        uint8_t c = 'a', lsr = 0;
        bus.read(0x3F8 + kLsr, &lsr, 1);
        bus.write(0x3F8 + kData, &c, 1);
      }
    });
  ts.emplace_back([&] {
    for (int i = 0; i < kBytes; ++i) {
      uint8_t b = 'k', got = 0;
      f.uart.push_input({&b, 1});
      bus.read(0x3F8 + kData, &got, 1);
    }
  });
  for (auto& t : ts) t.join();
  CHECK(f.sink.out.size() == size_t{kThreads} * kBytes);
  CHECK(f.uart.input_dropped() == 0);  // the reader keeps up: at most one byte queued per push
}
