// The C library functions libfdt.a and the compiler expect, for a freestanding kernel.
// String moves use REP MOVSB/STOSB: fast at CPL3 and never turned back into calls by the compiler.
#include <cstddef>
#include <cstdint>

#include "guest/hypercall.hpp"

extern "C" {

void* memcpy(void* d, const void* s, size_t n) {
  void* r = d;
  asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n)::"memory");
  return r;
}
void* memset(void* d, int c, size_t n) {
  void* r = d;
  asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
  return r;
}
void* memmove(void* d, const void* s, size_t n) {
  auto* dp = static_cast<unsigned char*>(d);
  auto* sp = static_cast<const unsigned char*>(s);
  if (dp <= sp || dp >= sp + n) return memcpy(d, s, n);
  while (n--) dp[n] = sp[n];
  return d;
}
int memcmp(const void* a, const void* b, size_t n) {
  auto* x = static_cast<const unsigned char*>(a);
  auto* y = static_cast<const unsigned char*>(b);
  for (size_t i = 0; i < n; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}
void* memchr(const void* s, int c, size_t n) {
  auto* p = static_cast<const unsigned char*>(s);
  for (size_t i = 0; i < n; i++)
    if (p[i] == static_cast<unsigned char>(c)) return const_cast<unsigned char*>(p + i);
  return nullptr;
}
size_t strlen(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}
size_t strnlen(const char* s, size_t max) {
  size_t n = 0;
  while (n < max && s[n]) n++;
  return n;
}
char* strchr(const char* s, int c) {
  for (;; s++) {
    if (*s == static_cast<char>(c)) return const_cast<char*>(s);
    if (!*s) return nullptr;
  }
}
char* strrchr(const char* s, int c) {
  const char* last = nullptr;
  for (;; s++) {
    if (*s == static_cast<char>(c)) last = s;
    if (!*s) return const_cast<char*>(last);
  }
}
unsigned long strtoul(const char* s, char** end, int base) {
  while (*s == ' ' || *s == '\t') s++;
  if ((base == 0 || base == 16) && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s += 2;
    base = 16;
  } else if (base == 0) {
    base = s[0] == '0' ? 8 : 10;
  }
  unsigned long v = 0;
  for (;; s++) {
    int d;
    if (*s >= '0' && *s <= '9') d = *s - '0';
    else if (*s >= 'a' && *s <= 'z') d = *s - 'a' + 10;
    else if (*s >= 'A' && *s <= 'Z') d = *s - 'A' + 10;
    else break;
    if (d >= base) break;
    v = v * static_cast<unsigned long>(base) + static_cast<unsigned long>(d);
  }
  if (end) *end = const_cast<char*>(s);
  return v;
}

[[noreturn]] void __stack_chk_fail() { guest::panic("stack protector: stack smashed"); }
[[noreturn]] void __cxa_pure_virtual() { guest::panic("pure virtual call"); }

}  // extern "C"

extern "C" char* strstr(const char* h, const char* n) {
  size_t nl = strlen(n);
  for (; *h; h++)
    if (memcmp(h, n, nl) == 0) return const_cast<char*>(h);
  return nl ? nullptr : const_cast<char*>(h);
}

extern "C" int strcmp(const char* a, const char* b) {
  while (*a && *a == *b) a++, b++;
  return static_cast<unsigned char>(*a) - static_cast<unsigned char>(*b);
}
