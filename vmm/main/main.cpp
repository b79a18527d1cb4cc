// hvmm: a KVM micro-VMM with memory reclamation built in. See README.md and ARCHITECTURE.md.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <csignal>
#include <iostream>
#include <exception>
#include <string_view>

#include "abi/exit_status.hpp"
#include "abi/limits.hpp"
#include "vmm/api/ctl.hpp"
#include "vmm/api/version.hpp"
#include "vmm/main/cli.hpp"

int main(int argc, char** argv) {
  using namespace hvmm;
  // A reader that goes away (`hvmm run … | head`) must not kill the VM: writes to the closed pipe
  // then fail with EPIPE, the guest's console output is dropped and the VM runs on.
  signal(SIGPIPE, SIG_IGN);
  CLI::App app{"hvmm: a KVM micro-VMM that takes free memory back from running VMs (HyperAlloc)", "hvmm"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  app.set_version_flag("--version", fmt::format("hvmm {} ({})", version(), build()));
  // `hvmm help` and a mistyped subcommand: CLI11 would only say "A subcommand is required".
  if (argc > 1 && argv[1][0] != '-') {
    const std::string_view sub = argv[1];
    if (sub == "help") {
      fmt::print("{}", app.help());
      return 0;
    }
    if (sub != "run" && sub != "ctl") {
      fmt::print(stderr, "hvmm: unknown subcommand '{}' (subcommands: run, ctl; see hvmm --help)\n", sub.substr(0, 64));
      return exit_status::kUsage;
    }
  }

  cli::RunOptions ro;
  auto* run = app.add_subcommand("run", "Boot a VM (the built-in guest kernel unless --kernel is given)");
  std::string config_path;
  run->add_option("--config", config_path,
                  "Read options from a JSON file: {\"mem\":\"8G\",\"cpus\":2,\"auto-reclaim\":true,...} (keys: the long "
                  "options without dashes); options on the command line win");
  run->add_option("--mem", ro.mem, "Guest RAM: a multiple of 2 MiB, with suffix K/M/G/T (16M .. 1T; a bare number is bytes)")->capture_default_str();
  run->add_option("--mem-min", ro.mem_min,
                  "Floor: no resize and no automatic mode takes the guest below this (default 256M, or --mem if smaller)");
  run->add_option("--cpus", ro.cpus, fmt::format("Number of vCPUs (1 .. {})", abi::kMaxWorkloadCpus))->capture_default_str();
  run->add_option("--kernel", ro.kernel, "ELF64 kernel to boot instead of the built-in one");
  run->add_option("--cmdline", ro.cmdline, "Kernel command line");
  run->add_option("--workload", ro.workload,
                  "Steps for the built-in kernel, separated by ';', e.g. \"alloc 2G; free; sleep 20s\". "
                  "Steps: info | echo TEXT | sleep DURATION | exit [CODE] | fault | "
                  "alloc SIZE|N%|all (4 KiB frames, patterned) | alloc-huge SIZE|N%|all (2 MiB) | "
                  "free [all] (newest region / all) | verify | stats | barrier (wait for `hvmm ctl continue`) | "
                  "bench-alloc | replay TIME-SCALE MEM-SCALE [SAMPLE] (the --trace) | stream DURATION [BYTES] (STREAM copy) | "
                  "ftq DURATION [QUANTUM] (fixed time quantum work). Sizes: K/M/G/T or N% of RAM; durations: ms/s/m (a bare number is seconds). "
                  "Default: a demo whose memory demand rises and falls (about 33 s at 2G, 45 s at 16G here)");
  run->add_option("--auto-reclaim", ro.auto_reclaim, "Give free guest memory back to the host continuously; optional PERIOD, 10ms .. 1h (default 500ms; a free huge frame is taken after 2-3 x PERIOD idle): "
                  "hyperalloc soft-reclaims idle huge frames, balloon(-huge) enables free page reporting, virtio-mem follows the "
                  "guest's free memory (see --virtio-mem-step)")
      ->expected(0, 1);
  // Tuning knob for bench/auto_reclaim_tuning.py; hidden from --help (group "").
  run->add_option("--auto-reclaim-age", ro.auto_reclaim_age,
                  "hyperalloc auto-reclaim: consecutive scans a huge frame must be seen free before it is reclaimed (1 .. 100)")
      ->group("");
  run->add_option("--reclaim", ro.reclaim,
                  "Reclamation mechanism: hyperalloc | balloon | balloon-huge | virtio-mem | none. "
                  "balloon-huge: the balloon with 2 MiB pages. virtio-mem: --mem is the maximum; "
                  "the guest boots with --virtio-mem-boot and hot-plugs the rest (all of it at start)")
      ->capture_default_str();
  run->add_option("--virtio-mem-boot", ro.virtio_mem_boot,
                  "virtio-mem: boot memory, never unplugged (default --mem/8, at least 256M; a multiple of 2 MiB)");
  run->add_option("--virtio-mem-step", ro.virtio_mem_step,
                  "virtio-mem --auto-reclaim: the step (default --mem/16); once per PERIOD (default 1s) it grows by 2 "
                  "steps if the guest's free memory < step/2, by 1 if < step, shrinks by 1 if > 2 steps, within "
                  "[--mem/8, --mem]");
  run->add_option("--mem-limit", ro.mem_limit,
                  "Cap the guest's usable memory at SIZE (< --mem): it boots shrunk to SIZE, resizes above it are "
                  "refused, so a guest that wants more runs out of memory inside instead of getting hvmm OOM-killed");
  run->add_option("--api-sock", ro.api_sock, "Serve the control API on this Unix socket (see `hvmm ctl`)");
  run->add_flag("--quiet", ro.quiet, "No live status line and no summary");
  run->add_option("--trace", ro.trace, "Replay trace (bench/compiling/trace_convert.py) loaded as the initrd, for the `replay` step");
  run->add_option("--guest-alloc", ro.guest_alloc,
                  "The built-in guest's page allocator: llfree | buddy (Linux-like; not with hyperalloc or virtio-mem)")
      ->capture_default_str();

  std::string sock;
  std::vector<std::string> ctl_args;
  bool pretty = false;
  auto* ctl = app.add_subcommand("ctl",
                                 "Control a running VM over its HTTP API: status | info | ping | resize SIZE | "
                                 "auto-reclaim on [PERIOD] | off | continue | shutdown | metrics");
  ctl->add_option("--api-sock", sock, "The VM's control socket (hvmm run --api-sock)")->required();
  ctl->add_flag("--pretty", pretty, "Indent JSON answers (default: one line)");
  ctl->add_option("command", ctl_args,
                  "status: the counters, one JSON line | info: configuration and state | ping: version | "
                  "resize SIZE: set the guest's usable memory and wait | auto-reclaim on [PERIOD] | off | "
                  "continue: release the guest's `barrier` step | shutdown: stop the VM | metrics: Prometheus text. "
                  "Exit status: 0 ok, 1 refused by the VM, 2 usage, 3 cannot connect")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line: the error, and where help is.
    const char* help = *ctl ? "hvmm ctl --help" : *run ? "hvmm run --help" : "hvmm --help";
    fmt::print(stderr, "hvmm: {} (see '{}')\n", e.what(), help);
    return exit_status::kUsage;
  }

  try {
    if (*ctl) return api::run_ctl(sock, ctl_args, pretty, std::cout, std::cerr);
    ro.auto_reclaim_set = run->count("--auto-reclaim") > 0;
    ro.auto_reclaim_age_set = run->count("--auto-reclaim-age") > 0;
    ro.workload_set = run->count("--workload") > 0;
    if (!config_path.empty()) {
      std::vector<std::string> given;
      for (const CLI::Option* opt : run->get_options())
        if (opt->count() > 0 && !opt->get_lnames().empty()) given.push_back(opt->get_lnames()[0]);
      cli::apply_config_file(config_path, ro, given);
    }
    return cli::run_vm(ro);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "hvmm: {}\n", e.what());
    return exit_status::kUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "hvmm: {}\n", e.what());
    return exit_status::kHostError;
  }
}
