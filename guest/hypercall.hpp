// Port-I/O hypercalls to hvmm (abi/ports.hpp): one exit each, blocking where noted.
#pragma once
#include <cstdint>

#include "abi/ports.hpp"

namespace guest {

int64_t hypercall(hvmm::abi::Hypercall nr, uint64_t a0 = 0, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0,
                  uint64_t a4 = 0, uint64_t a5 = 0);
void console_write(const char* s, uint64_t len);
void sleep_ns(uint64_t ns);
// Blocks while *word == expected (futex-like), at most timeout_ns. Returns false on timeout. Any
// wake() in the VM may end it early (the host wakes every waiter): callers re-check their condition.
bool wait_on(const volatile uint32_t* word, uint32_t expected, uint64_t timeout_ns);
// Blocks until *word != expected or timeout_ns have passed by the host's clock, however many
// unrelated wake-ups come in between. Returns whether the word changed.
bool wait_changed(const volatile uint32_t* word, uint32_t expected, uint64_t timeout_ns);
void wake(const volatile uint32_t* word);
uint64_t host_now_ns();
[[noreturn]] void exit_vm(uint32_t code);
[[noreturn]] void panic(const char* msg);

}  // namespace guest
