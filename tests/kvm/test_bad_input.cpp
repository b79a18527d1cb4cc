// Bad input must end hvmm with one clear line on stderr and a non-zero status, never with a crash.
#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "hvmm_env.hpp"
#include "tests/common/elf_image.hpp"

using namespace hvmm::testing;

namespace {

constexpr int kUsage = 2;  // abi/exit_status.hpp exit_status::kUsage

// One line on stderr, "hvmm: …" and mentioning `subject`; non-zero exit, not a signal.
void check_rejected(const ProcessResult& r, const std::string& subject) {
  INFO(r.describe());
  REQUIRE(r.exited);  // not killed by a signal, so no core dump either
  CHECK_FALSE(r.core_dumped);
  CHECK(r.status != 0);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.err.rfind("hvmm: ", 0) == 0);
  CHECK_THAT(r.err, Catch::Contains(subject));
}

// A valid ELF64 x86-64 executable with one PT_LOAD at 1 MiB whose memory size is `memsz`.
std::string elf_with_segment(uint64_t memsz) {
  constexpr uint64_t kLoad = 1ull << 20;
  ElfImage img;
  img.add(PT_LOAD, kLoad, std::vector<uint8_t>(16, 0xf4), memsz);  // hlt
  img.eh.e_entry = kLoad;
  const auto bytes = img.bytes();
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

// Rejected while parsing the command line, before /dev/kvm is opened: these run without KVM too.
TEST_CASE("bad input: --mem 0", "[kvm][bad-input]") {
  auto r = run_hvmm({"run", "--mem", "0"});
  check_rejected(r, "--mem 0");
  CHECK(r.status == kUsage);
}

TEST_CASE("bad input: --mem 1P", "[kvm][bad-input]") {
  auto r = run_hvmm({"run", "--mem", "1P"});
  check_rejected(r, "--mem 1P");
  CHECK(r.status == kUsage);
}

TEST_CASE("bad input: --mem 12345", "[kvm][bad-input]") {
  auto r = run_hvmm({"run", "--mem", "12345"});
  check_rejected(r, "--mem 12345");
  CHECK(r.status == kUsage);
}

TEST_CASE("bad input: --cpus 0", "[kvm][bad-input]") {
  auto r = run_hvmm({"run", "--cpus", "0"});
  check_rejected(r, "--cpus 0");
  CHECK(r.status == kUsage);
}

TEST_CASE("bad input: --cpus 1000", "[kvm][bad-input]") {
  auto r = run_hvmm({"run", "--cpus", "1000"});
  check_rejected(r, "--cpus 1000");
  CHECK(r.status == kUsage);
}

TEST_CASE("bad input: --kernel /nonexistent", "[kvm][bad-input]") {
  HVMM_REQUIRE_KVM();
  check_rejected(run_hvmm({"run", "--kernel", "/nonexistent"}), "/nonexistent");
}

TEST_CASE("bad input: --kernel /etc/passwd (not an ELF)", "[kvm][bad-input]") {
  HVMM_REQUIRE_KVM();
  check_rejected(run_hvmm({"run", "--kernel", "/etc/passwd"}), "/etc/passwd");
}

TEST_CASE("bad input: an ELF whose segment does not fit in guest RAM", "[kvm][bad-input]") {
  HVMM_REQUIRE_KVM();
  TempFile elf("too-big.elf", elf_with_segment(1ull << 30));
  check_rejected(run_hvmm({"run", "--mem", "64M", "--kernel", elf.path()}), elf.path());
}

TEST_CASE("bad input: no permission on /dev/kvm", "[kvm][bad-input]") {
  HVMM_REQUIRE_KVM();
  const char* setpriv = "/usr/bin/setpriv";
  if (::access(setpriv, X_OK) != 0) {
    WARN("SKIPPED: setpriv not found (util-linux); cannot run hvmm as an unprivileged user");
    return;
  }
  if (::geteuid() != 0) {
    WARN("SKIPPED: needs root to run hvmm as uid 65534");
    return;
  }
  struct stat kvm{};
  REQUIRE(::stat("/dev/kvm", &kvm) == 0);
  if ((kvm.st_mode & (S_IROTH | S_IWOTH)) == (S_IROTH | S_IWOTH) || kvm.st_uid == 65534 || kvm.st_gid == 65534) {
    WARN("SKIPPED: uid 65534 may open /dev/kvm here; no permission error to provoke");
    return;
  }
  // A world-readable copy of the binary: the build tree may sit in a directory nobody cannot enter.
  TempFile copy("hvmm", "", 0755);
  std::filesystem::copy_file(hvmm_binary(), copy.path(), std::filesystem::copy_options::overwrite_existing);
  REQUIRE(::chmod(copy.dir().c_str(), 0755) == 0);
  REQUIRE(::chmod(copy.path().c_str(), 0755) == 0);

  auto r = run_process({setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", copy.path(), "run", "--mem", "64M",
                        "--workload", "exit"},
                       ChildOptions{.timeout = kRunTimeout});
  check_rejected(r, "/dev/kvm");
}

TEST_CASE("bad input: a command line over 64 KiB is a usage error", "[kvm][bad-input]") {
  auto r = run_hvmm({"run", "--cmdline", std::string(70'000, 'a'), "--workload", "exit 0"});
  check_rejected(r, "--cmdline/--workload");
  CHECK(r.status == kUsage);
}

TEST_CASE("a reader that goes away does not kill the VM (SIGPIPE)", "[kvm][bad-input]") {
  HVMM_REQUIRE_KVM();
  // `head -c 1` exits after the first byte; the guest's later console lines then meet a closed pipe.
  const std::string script =
      "\"$0\" run --mem 64M --cpus 1 --quiet --workload 'echo first; sleep 500ms; echo second; echo third; exit 5' "
      "| head -c 1 >/dev/null; echo \"hvmm=${PIPESTATUS[0]}\"";
  auto r = run_process({"/bin/bash", "-c", script, hvmm_binary()}, ChildOptions{.timeout = std::chrono::seconds(30)});
  INFO(r.describe());
  REQUIRE(r.exited);
  CHECK_THAT(r.out, Catch::Contains("hvmm=5"));  // the guest's own exit code, not 141 (SIGPIPE)
}
