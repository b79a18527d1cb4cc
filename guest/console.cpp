#include "guest/console.hpp"

#include <cstdint>

#include "guest/hypercall.hpp"
#include "guest/percpu.hpp"

namespace guest {
namespace {

// A sink that either fills a caller buffer or the CPU's console line.
struct Sink {
  char* buf;
  size_t size;
  size_t len = 0;
  bool console;
  void put(char c) {
    if (console) {
      PerCpu* pc = this_cpu();
      pc->line[pc->line_len++] = c;
      if (c == '\n' || pc->line_len == kLineMax) console_flush();
    } else if (len + 1 < size) {
      buf[len++] = c;
    }
  }
};

void put_number(Sink& s, uint64_t v, unsigned base, bool neg, int width, char pad) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  if (neg) tmp[n++] = '-';
  for (int i = n; i < width; i++) s.put(pad);
  while (n) s.put(tmp[--n]);
}

void format(Sink& s, const char* f, va_list ap) {
  for (; *f; f++) {
    if (*f != '%') {
      s.put(*f);
      continue;
    }
    f++;
    char pad = ' ';
    bool left = false;
    if (*f == '-') left = true, f++;
    if (*f == '0') pad = '0', f++;
    int width = 0;
    while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
    int longs = 0;
    while (*f == 'l' || *f == 'z') longs++, f++;
    switch (*f) {
      case 'd':
      case 'i': {
        int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
        put_number(s, v < 0 ? uint64_t(-v) : uint64_t(v), 10, v < 0, width, pad);
        break;
      }
      case 'u':
        put_number(s, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, false, width, pad);
        break;
      case 'x':
        put_number(s, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, false, width, pad);
        break;
      case 'p':
        s.put('0'), s.put('x');
        put_number(s, reinterpret_cast<uintptr_t>(va_arg(ap, void*)), 16, false, width, pad);
        break;
      case 'c':
        s.put(static_cast<char>(va_arg(ap, int)));
        break;
      case 's': {
        const char* str = va_arg(ap, const char*);
        str = str ? str : "(null)";
        int n = 0;
        while (str[n]) n++;
        if (!left)
          for (int i = n; i < width; i++) s.put(' ');
        for (; *str; str++) s.put(*str);
        if (left)
          for (int i = n; i < width; i++) s.put(' ');
        break;
      }
      case '%':
        s.put('%');
        break;
      default:
        return;  // unknown conversion: stop rather than misread the arguments
    }
  }
}
}  // namespace

void console_flush() {
  PerCpu* pc = this_cpu();
  if (pc->line_len) console_write(pc->line, pc->line_len);
  pc->line_len = 0;
}

void kvprintf(const char* fmt, va_list ap) {
  Sink s{nullptr, 0, 0, true};
  format(s, fmt, ap);
}

void kprintf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  kvprintf(fmt, ap);
  va_end(ap);
}

size_t ksnprintf(char* buf, size_t size, const char* fmt, ...) {
  Sink s{buf, size, 0, false};
  va_list ap;
  va_start(ap, fmt);
  format(s, fmt, ap);
  va_end(ap);
  if (size) buf[s.len] = 0;
  return s.len;
}

}  // namespace guest
