#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace hvmm::testing {
namespace {

constexpr size_t kMaxCapture = 64u << 20;  // per stream; a runaway child must not exhaust the test

std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  int release() { return std::exchange(fd, -1); }
};

void make_pipe(Fd& r, Fd& w) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw sys_error("pipe2");
  r.fd = p[0];
  w.fd = p[1];
}

// Reads what is available from fd into buf (up to the cap). Returns false at EOF or error.
bool pump(int fd, std::string& buf) {
  char chunk[16384];
  ssize_t n = ::read(fd, chunk, sizeof chunk);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  size_t room = kMaxCapture - std::min(kMaxCapture, buf.size());
  buf.append(chunk, std::min(static_cast<size_t>(n), room));
  return true;
}

std::string clip(const std::string& s) {
  constexpr size_t kShow = 4096;
  return s.size() <= kShow ? s : s.substr(0, kShow) + "\n[... " + std::to_string(s.size() - kShow) + " more bytes]";
}

}  // namespace

std::string ProcessResult::describe() const {
  std::ostringstream o;
  if (timed_out)
    o << "timed out after " << elapsed.count() << " s and was killed";
  else if (exited)
    o << "exited with status " << status << " after " << elapsed.count() << " s";
  else
    o << "killed by signal " << signal << " (" << strsignal(signal) << ")" << (core_dumped ? ", core dumped" : "");
  o << "\n--- stdout ---\n" << clip(out) << "\n--- stderr ---\n" << clip(err);
  return o.str();
}

std::optional<uint64_t> parse_vmrss_kib(const std::string& status_text) {
  std::istringstream in(status_text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    uint64_t kib;
    std::string unit;
    if (fields >> kib >> unit && unit == "kB") return kib;
    return std::nullopt;
  }
  return std::nullopt;
}

ChildProcess::ChildProcess(std::vector<std::string> argv, ChildOptions opts) : opts_(opts) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  Fd out_r, out_w, err_r, err_w, exec_r, exec_w;
  make_pipe(out_r, out_w);
  make_pipe(err_r, err_w);
  make_pipe(exec_r, exec_w);  // carries errno if exec fails; closes (CLOEXEC) if it succeeds
  Fd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (devnull.fd < 0) throw sys_error("open /dev/null");
  Fd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (wake.fd < 0) throw sys_error("eventfd");

  const pid_t parent = ::getpid();
  start_ = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) throw sys_error("fork");
  if (pid == 0) {
    // Only async-signal-safe calls until exec. Own process group, so that a timeout kills
    // everything it started; die with the test if the test dies.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(devnull.fd, 0);
    ::dup2(out_w.fd, 1);
    ::dup2(err_w.fd, 2);
    ::execvp(cargv[0], cargv.data());
    int e = errno;
    [[maybe_unused]] ssize_t n = ::write(exec_w.fd, &e, sizeof e);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, so that kill() never races the child's setpgid
  out_w.reset();
  err_w.reset();
  exec_w.reset();
  int exec_errno = 0;
  ssize_t n;
  do n = ::read(exec_r.fd, &exec_errno, sizeof exec_errno);
  while (n < 0 && errno == EINTR);
  if (n == sizeof exec_errno) {
    int st;
    ::waitpid(pid, &st, 0);
    errno = exec_errno;
    throw sys_error("cannot execute " + argv[0]);
  }

  pid_ = pid;
  out_fd_ = out_r.release();
  err_fd_ = err_r.release();
  wake_fd_ = wake.release();
  monitor_ = std::thread([this] { monitor(); });
}

ChildProcess::~ChildProcess() {
  kill();
  if (monitor_.joinable()) monitor_.join();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ChildProcess::kill() {
  {
    std::lock_guard lock(mu_);
    if (done_) return;
    kill_requested_ = true;
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

bool ChildProcess::running() const {
  std::lock_guard lock(mu_);
  return !done_;
}

std::optional<uint64_t> ChildProcess::rss_kib() const {
  if (!running()) return std::nullopt;
  std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
  std::stringstream text;
  text << f.rdbuf();
  return parse_vmrss_kib(text.str());
}

std::string ChildProcess::out_so_far() const {
  std::lock_guard lock(mu_);
  return result_.out;
}

std::string ChildProcess::err_so_far() const {
  std::lock_guard lock(mu_);
  return result_.err;
}

bool ChildProcess::wait_for_stdout(const std::string& needle, std::chrono::milliseconds limit) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, limit, [&] { return done_ || result_.out.find(needle) != std::string::npos; });
  return result_.out.find(needle) != std::string::npos;
}

ProcessResult ChildProcess::wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return done_; });
  return result_;
}

void ChildProcess::monitor() {
  using clock = std::chrono::steady_clock;
  const auto deadline = start_ + opts_.timeout;
  // A pidfd becomes readable when the child exits: exact end times without busy polling.
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  bool killed = false, timed_out = false;
  auto next_sample = clock::now();
  uint64_t peak = 0;

  for (;;) {
    auto now = clock::now();
    bool kill_now;
    {
      std::lock_guard lock(mu_);
      kill_now = kill_requested_;
    }
    if (!killed && now >= deadline) timed_out = kill_now = true;
    if (kill_now && !killed) {
      ::kill(-pid_, SIGKILL);
      killed = true;
    }
    if (now >= next_sample) {
      if (auto rss = rss_kib()) peak = std::max(peak, *rss);
      next_sample = now + opts_.rss_period;
    }

    // Ended? Look without reaping first: while the leader is an unreaped zombie its process-group
    // id cannot be reused, so killing leftovers of the group here is safe.
    siginfo_t si{};
    if (::waitid(P_PID, pid_, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid_) {
      ::kill(-pid_, SIGKILL);
      int st = 0;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
      auto end = clock::now();
      // Drain what is left in the pipes; bounded, in case something outside the group holds them.
      for (auto drain_until = end + std::chrono::seconds(1); (out_fd_ >= 0 || err_fd_ >= 0) && clock::now() < drain_until;) {
        pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
        if (::poll(fds, 2, 50) <= 0) continue;
        std::lock_guard lock(mu_);
        for (int i = 0; i < 2; ++i) {
          int& fd = i == 0 ? out_fd_ : err_fd_;
          if (fds[i].revents && !pump(fd, i == 0 ? result_.out : result_.err)) {
            ::close(fd);
            fd = -1;
          }
        }
      }
      std::lock_guard lock(mu_);
      for (int* fd : {&out_fd_, &err_fd_})
        if (*fd >= 0) ::close(std::exchange(*fd, -1));
      result_.exited = WIFEXITED(st);
      result_.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      result_.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
      result_.core_dumped = WIFSIGNALED(st) && WCOREDUMP(st);
      result_.timed_out = timed_out;
      result_.elapsed = end - start_;
      result_.peak_rss_kib = peak;
      done_ = true;
      cv_.notify_all();
      return;
    }

    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min(next_sample, killed ? next_sample : deadline) - clock::now());
    pollfd fds[4] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}, {pidfd.fd, POLLIN, 0}};
    int r = ::poll(fds, 4, static_cast<int>(std::clamp<int64_t>(wait_ms.count() + 1, 1, 1000)));
    if (r <= 0) continue;
    if (fds[2].revents) {
      uint64_t v;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &v, sizeof v);
    }
    std::lock_guard lock(mu_);
    bool grew = false;
    for (int i = 0; i < 2; ++i) {
      int& fd = i == 0 ? out_fd_ : err_fd_;
      if (!fds[i].revents) continue;
      grew = true;
      if (!pump(fd, i == 0 ? result_.out : result_.err)) {
        ::close(fd);
        fd = -1;
      }
    }
    if (grew) cv_.notify_all();
  }
}

ProcessResult run_process(std::vector<std::string> argv, ChildOptions opts,
                          const std::function<void(ChildProcess&)>& while_running) {
  ChildProcess child(std::move(argv), opts);
  if (while_running) while_running(child);
  return child.wait();
}

}  // namespace hvmm::testing
