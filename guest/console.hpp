// Console output: printf into the CPU's line buffer, one hypercall per line.
#pragma once
#include <cstdarg>
#include <cstddef>

namespace guest {

void kprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char* fmt, va_list ap);
void console_flush();
// Formats into buf (always NUL-terminated); returns the length written.
size_t ksnprintf(char* buf, size_t size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

}  // namespace guest
