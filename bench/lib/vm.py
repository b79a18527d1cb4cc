"""Launch and drive one hvmm VM from a benchmark: control API (HTTP on the Unix socket, stdlib only),
RSS sampling, guest output capture. Every VM is killed when its context ends, even on errors."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix stream socket (the host part of the URL is ignored by hvmm)."""

    def __init__(self, path: str, timeout: float = 600):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def http_request(sock: str, method: str, path: str, body: dict | None = None,
                 timeout: float = 600) -> tuple[int, str, str]:
    """One request to the API at `sock`: (status, content type, body text)."""
    conn = UnixHTTPConnection(sock, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read().decode(errors="replace")
    finally:
        conn.close()


# The former JSON-lines commands, as endpoints: Vm.request() keeps taking {"cmd": ...}.
_ENDPOINTS = {"status": ("GET", "/api/v1/vm.counters"), "info": ("GET", "/api/v1/vm.info"),
              "ping": ("GET", "/api/v1/vmm.ping"), "resize": ("PUT", "/api/v1/vm.resize"),
              "continue": ("PUT", "/api/v1/vm.continue"), "shutdown": ("PUT", "/api/v1/vm.shutdown"),
              "auto-reclaim": ("PUT", "/api/v1/vm.auto-reclaim")}


def read_rss(pid: int) -> int:
    """VmRSS of a process in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples a process's RSS every `period` seconds: [(t, bytes)], t since start."""

    def __init__(self, pid: int, period: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self._halt.is_set():
            self.samples.append((time.monotonic() - self.t0, read_rss(self.pid)))
            self._halt.wait(self.period)

    def stop(self):
        self._halt.set()
        self.join()

    def gib_minutes(self) -> float:
        s = self.samples
        return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(s, s[1:])) / 2**30 / 60

    def peak(self) -> int:
        return max((b for _, b in self.samples), default=0)


class Vm:
    """`with Vm(hvmm, mem="16G", workload="...") as vm:` — starts hvmm with an API socket."""

    def __init__(self, hvmm: str, mem: str = "16G", cpus: int = 2, workload: str = "", reclaim: str = "hyperalloc",
                 auto_reclaim: str | None = None, extra: list[str] | None = None, sample_period: float = 0.1,
                 env: dict[str, str] | None = None):
        """`env`: variables added to this VM's environment (for example the HVMM_FAULT_INJECT test seam)."""
        self.dir = tempfile.TemporaryDirectory(prefix="hvmm-bench-")
        self.sock = os.path.join(self.dir.name, "api.sock")
        cmd = [hvmm, "run", "--mem", mem, "--cpus", str(cpus), "--reclaim", reclaim, "--api-sock", self.sock,
               "--quiet"]
        if workload:
            cmd += ["--workload", workload]
        if auto_reclaim is not None:
            cmd.append(f"--auto-reclaim={auto_reclaim}" if auto_reclaim else "--auto-reclaim")
        cmd += extra or []
        self.cmd = cmd
        self.out_path = Path(self.dir.name) / "stdout"
        self.err_path = Path(self.dir.name) / "stderr"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True,
                                         env={**os.environ, **env} if env else None)
        self.rss = RssSampler(self.proc.pid, sample_period)
        self.rss.start()
        try:
            self._wait_socket()
        except BaseException:
            self.close()  # __exit__ never runs when the constructor fails: do not leave the VM behind
            raise

    def _wait_socket(self, timeout: float = 10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hvmm exited early ({self.proc.returncode}): {self.stderr()}")
            if os.path.exists(self.sock):
                return
            time.sleep(0.01)
        raise RuntimeError("hvmm did not open its API socket")

    def request(self, obj: dict, timeout: float = 600) -> dict:
        """{"cmd": "status" | "resize" | "continue" | "shutdown" | ..., other fields: the body}. Returns
        the answer with "ok": true added, or {"ok": false, "error": message, "code": error code}."""
        obj = dict(obj)
        method, path = _ENDPOINTS[obj.pop("cmd")]
        status, _, text = http_request(self.sock, method, path, obj if method == "PUT" and obj else None, timeout)
        answer = json.loads(text) if text else {}
        if status >= 300:
            err = answer.get("error", {}) if isinstance(answer, dict) else {}
            # A resize that moved memory before it stopped says where it is (error.resize: usable_bytes, ...).
            return {**err.get("resize", {}), "ok": False, "error": err.get("message", text), "code": err.get("code"),
                    "http_status": status}
        answer["ok"] = True
        return answer

    def status(self) -> dict:
        return self.request({"cmd": "status"})

    def resize(self, size, allow_short: bool = False) -> dict:
        """The resize reply; raises when it failed. With `allow_short`, a resize that moved memory and
        then stopped short of the target (its reply carries usable_bytes) is returned, with ok false."""
        r = self.request({"cmd": "resize", "size": size})
        if not r.get("ok") and not (allow_short and r.get("usable_bytes") is not None):
            raise RuntimeError(f"resize to {size} failed: {r.get('error')}")
        return r

    def timed_resize(self, size, t0: float, allow_short: bool = False) -> dict:
        """resize(), timed by the VMM (elapsed_ms) and by this script (wall_ms; start_s and end_s on
        the monotonic clock, seconds after `t0`), with whether it reached the target and where it is."""
        start = time.monotonic()
        r = self.resize(size, allow_short)
        end = time.monotonic()
        return {"size": size, "elapsed_ms": r.get("elapsed_ms"), "wall_ms": (end - start) * 1e3,
                "start_s": start - t0, "end_s": end - t0, "reached": bool(r.get("ok")),
                "usable_bytes": r.get("usable_bytes"), "reply": r}

    def wait_barrier(self, passed: int | None = None, timeout: float = 600) -> dict:
        """Blocks until the guest sits in a `barrier` step; returns that status. With `passed`, only the
        barrier after `passed` earlier ones counts: right after `cont()` the guest may still be
        reported waiting in the barrier it is just leaving."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"guest ended before its barrier ({self.proc.returncode}): {self.stderr()}\n"
                                   f"guest output:\n{self.stdout()[-2000:]}")
            st = self.status()
            if st.get("barrier_waiting") and (passed is None or st.get("barriers_passed") == passed):
                return st
            time.sleep(0.02)
        raise TimeoutError("guest never reached its barrier")

    def cont(self):
        self.request({"cmd": "continue"})

    def wait(self, timeout: float = 600) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.rss.stop()

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.rss.is_alive():
            self.rss.stop()
        self.dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
