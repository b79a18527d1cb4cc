// hvmm: a KVM micro-VMM with memory reclamation built in. See README.md and ARCHITECTURE.md.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <csignal>
#include <exception>

#include "abi/exit_status.hpp"
#include "abi/limits.hpp"
#include "vmm/api/client.hpp"
#include "vmm/main/cli.hpp"

int main(int argc, char** argv) {
  using namespace hvmm;
  // A reader that goes away (`hvmm run … | head`) must not kill the VM: writes to the closed pipe
  // then fail with EPIPE, the guest's console output is dropped and the VM runs on.
  signal(SIGPIPE, SIG_IGN);
  CLI::App app{"hvmm: a KVM micro-VMM that takes free memory back from running VMs (HyperAlloc)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");

  cli::RunOptions ro;
  auto* run = app.add_subcommand("run", "Boot a VM (the built-in guest kernel unless --kernel is given)");
  run->add_option("--mem", ro.mem, "Guest RAM: a multiple of 2 MiB, with suffix K/M/G/T (16M .. 1T)")->capture_default_str();
  run->add_option("--cpus", ro.cpus, fmt::format("Number of vCPUs (1 .. {})", abi::kMaxWorkloadCpus))->capture_default_str();
  run->add_option("--kernel", ro.kernel, "ELF64 kernel to boot instead of the built-in one");
  run->add_option("--cmdline", ro.cmdline, "Kernel command line");
  run->add_option("--workload", ro.workload,
                  "Steps for the built-in kernel, separated by ';', e.g. \"alloc 2G; free; sleep 20s\". "
                  "Steps: info | echo TEXT | sleep DURATION | exit [CODE] | fault | "
                  "alloc SIZE|N%|all (4 KiB frames, patterned) | alloc-huge SIZE|N%|all (2 MiB) | "
                  "free [all] (newest region / all) | verify | stats | barrier (wait for `hvmm ctl continue`) | "
                  "bench-alloc. Default: a 40 s demo whose memory demand rises and falls");
  run->add_option("--auto-reclaim", ro.auto_reclaim, "Give free guest memory back to the host continuously; optional PERIOD (default 500ms; a free huge frame is taken after 2-3 x PERIOD idle): "
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

  std::string sock;
  std::vector<std::string> ctl_args;
  auto* ctl = app.add_subcommand("ctl", "Control a running VM: status | resize SIZE | continue | shutdown");
  ctl->add_option("--api-sock", sock, "The VM's control socket (hvmm run --api-sock)")->required();
  ctl->add_option("command", ctl_args,
                  "status: one JSON object | resize SIZE: set the guest's usable memory and wait | "
                  "continue: release the guest's `barrier` step | shutdown: stop the VM")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "hvmm: {}\nRun 'hvmm --help' (or 'hvmm run --help') for usage.\n", e.what());
    return exit_status::kUsage;
  }

  try {
    if (*ctl) return api::run_ctl(sock, ctl_args);
    ro.auto_reclaim_set = run->count("--auto-reclaim") > 0;
    ro.auto_reclaim_age_set = run->count("--auto-reclaim-age") > 0;
    return cli::run_vm(ro);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "hvmm: {}\n", e.what());
    return exit_status::kUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "hvmm: {}\n", e.what());
    return exit_status::kHostError;
  }
}
