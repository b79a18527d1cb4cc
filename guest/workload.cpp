#include "guest/workload.hpp"

#include <cstring>

#include "guest/console.hpp"
#include "guest/hypercall.hpp"
#include "guest/parse.hpp"
#include "guest/smp.hpp"
#include "guest/steps.hpp"

namespace guest {
namespace {

constexpr unsigned kMaxWorkload = 8192;
constexpr unsigned kMaxSteps = 256;
constexpr unsigned kMaxArgs = 32;
// An address no identity map covers: touching it raises #PF.
constexpr uintptr_t kUnmapped = 0x7f00'dead'0000ULL;  // canonical, PML4 slot 254: never mapped

uint32_t step_info(const StepArgs& a) {
  if (a.argc != 1) return step_usage(a, "info");
  if (!a.dry) kprintf("cpus=%u mem=%lu tsc_hz=%lu\n", a.boot->cpus, a.boot->ram_bytes, a.boot->tsc_hz);
  return 0;
}

uint32_t step_sleep(const StepArgs& a) {
  uint64_t ns;
  if (a.argc != 2 || !parse_duration_ns(a.argv[1], ns)) return step_usage(a, "sleep <duration: 500ms, 20s, 1m>");
  if (!a.dry) sleep_ns(ns);
  return 0;
}

uint32_t step_exit(const StepArgs& a) {
  uint64_t code = 0;
  if (a.argc > 2 || (a.argc == 2 && (!parse_uint(a.argv[1], code) || code > 255)))
    return step_usage(a, "exit [<code 0..255>]");
  if (!a.dry) {
    console_flush();
    exit_vm(static_cast<uint32_t>(code));
  }
  return 0;
}

uint32_t step_echo(const StepArgs& a) {
  if (a.dry) return 0;
  for (int i = 1; i < a.argc; i++) kprintf(i + 1 < a.argc ? "%s " : "%s", a.argv[i]);
  kprintf("\n");
  return 0;
}

uint32_t step_barrier(const StepArgs& a) {
  if (a.argc != 1) return step_usage(a, "barrier");
  if (!a.dry) {
    kprintf("barrier: waiting for `hvmm ctl continue`\n");
    hypercall(hvmm::abi::Hypercall::kBarrier);
  }
  return 0;
}

uint32_t step_fault(const StepArgs& a) {
  if (a.argc != 1) return step_usage(a, "fault");
  if (!a.dry) {
    console_flush();
    *reinterpret_cast<volatile uint64_t*>(kUnmapped) = 1;
  }
  return 0;
}

struct Parsed {
  int argc;
  char* argv[kMaxArgs];
};

char g_buf[kMaxWorkload];
Parsed g_steps[kMaxSteps];

const StepDef* find_step(const char* name);

constexpr StepDef kBasic[] = {
    {"info", "info", step_info},
    {"sleep", "sleep <duration>", step_sleep},
    {"exit", "exit [<code>]", step_exit},
    {"fault", "fault", step_fault},
    {"echo", "echo <text>", step_echo},
    {"barrier", "barrier", step_barrier},
};
}  // namespace

extern const StepTable kBasicSteps = step_table(kBasic);

uint32_t step_usage(const StepArgs& a, const char* usage) {
  kprintf("workload: bad step '%s': usage: %s\n", a.argv[0], usage);
  return kExitBadWorkload;
}

namespace {
const StepTable* const kTables[] = {&kBasicSteps, &kMemSteps, &kBenchSteps, &kTestSteps, &kReplaySteps, &kInterferenceSteps, &kHostileSteps};

const StepDef* find_step(const char* name) {
  for (const StepTable* t : kTables)
    for (unsigned i = 0; i < t->count; i++)
      if (str_eq(t->steps[i].name, name)) return &t->steps[i];
  return nullptr;
}

void print_step_names() {
  const char* sep = "";
  for (const StepTable* t : kTables)
    for (unsigned i = 0; i < t->count && !t->hidden; i++, sep = ", ") kprintf("%s%s", sep, t->steps[i].name);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }
}  // namespace

uint32_t run_workload(const BootInfo& boot, const char* workload) {
  size_t len = strlen(workload);
  if (len >= kMaxWorkload) {
    kprintf("workload: longer than %u bytes\n", kMaxWorkload - 1);
    return kExitBadWorkload;
  }
  memcpy(g_buf, workload, len + 1);

  // Split into steps at ';' and into words at blanks, in place.
  unsigned n = 0;
  for (char* p = g_buf; *p;) {
    Parsed cur{0, {}};
    while (*p && *p != ';') {
      while (is_space(*p)) *p++ = 0;
      if (!*p || *p == ';') break;
      if (cur.argc == kMaxArgs) {
        kprintf("workload: step '%s' has too many arguments\n", cur.argv[0]);
        return kExitBadWorkload;
      }
      cur.argv[cur.argc++] = p;
      while (*p && *p != ';' && !is_space(*p)) p++;
    }
    if (*p == ';') *p++ = 0;
    if (cur.argc == 0) continue;
    if (n == kMaxSteps) {
      kprintf("workload: more than %u steps\n", kMaxSteps);
      return kExitBadWorkload;
    }
    g_steps[n++] = cur;
  }

  for (int pass = 0; pass < 2; pass++) {
    for (unsigned i = 0; i < n; i++) {
      const StepDef* def = find_step(g_steps[i].argv[0]);
      if (!def) {
        kprintf("workload: unknown step '%s' (steps: ", g_steps[i].argv[0]);
        print_step_names();
        kprintf(")\n");
        return kExitBadWorkload;
      }
      StepArgs a{g_steps[i].argc, g_steps[i].argv, &boot, pass == 0};
      if (uint32_t rc = def->run(a)) return rc;
    }
  }
  return 0;
}

}  // namespace guest
