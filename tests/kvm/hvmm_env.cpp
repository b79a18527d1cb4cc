#include "hvmm_env.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#ifndef HVMM_BINARY_PATH
#error "HVMM_BINARY_PATH must name the hvmm binary under test"
#endif

namespace hvmm::testing {

std::string hvmm_binary() {
  if (const char* env = std::getenv("HVMM_BIN"); env && *env) return env;
  return HVMM_BINARY_PATH;
}

bool kvm_available() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

ProcessResult run_hvmm(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                       const std::function<void(ChildProcess&)>& while_running) {
  std::vector<std::string> argv{hvmm_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(std::move(argv), ChildOptions{.timeout = timeout}, while_running);
}

size_t count_lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n + (!text.empty() && text.back() != '\n');
}

TempFile::TempFile(const std::string& name, const std::string& contents, unsigned mode) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "hvmm-test-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  dir_ = tmpl;
  path_ = dir_ + "/" + name;
  std::ofstream f(path_, std::ios::binary);
  f << contents;
  f.close();
  if (!f || ::chmod(path_.c_str(), mode) != 0) {
    std::string why = std::strerror(errno);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw std::runtime_error("writing " + path_ + ": " + why);
  }
}

TempFile::~TempFile() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace hvmm::testing
