#!/usr/bin/python3
"""The control API over a real socket, against api/openapi.yaml: boots hvmm (the built-in guest) with
bench/lib/vm.py, calls every endpoint, validates every JSON reply with the document's schema, reaches
every error code a client can cause, and talks to the VM with `curl --unix-socket`.

usage: test_openapi.py --hvmm build/hvmm     (prints SKIPPED and passes without /dev/kvm)"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import jsonschema  # noqa: E402  (Debian: python3-jsonschema)
import yaml  # noqa: E402  (Debian: python3-yaml)

from lib.vm import UnixHTTPConnection, Vm  # noqa: E402

HVMM = "build/hvmm"
DOC = yaml.safe_load((ROOT / "api" / "openapi.yaml").read_text())
MIB = 1 << 20


def validate(value, schema_name: str):
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": DOC["components"]}
    jsonschema.Draft202012Validator(schema).validate(value)


def raw(sock: str, method: str, path: str, body: bytes | None = None, headers=None):
    conn = UnixHTTPConnection(sock, 60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read().decode()
    except (BrokenPipeError, ConnectionResetError):
        # the server answered (413) and closed before it read the whole body: read what it said
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read().decode()
    finally:
        conn.close()


class ApiConformance(unittest.TestCase):
    def setUp(self):
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            self.skipTest("SKIPPED: /dev/kvm not available")

    def check_error(self, reply, code: str):
        status, ctype, body = reply
        self.assertTrue(ctype.startswith("application/json"), ctype)
        j = json.loads(body)
        validate(j, "Error")
        self.assertEqual(j["error"]["code"], code, body)
        # the status must be the one the document gives the code
        self.assertIn(code, DOC["components"]["schemas"]["ErrorCode"]["enum"])
        self.assertIn(f"{code} {status}", DOC["components"]["schemas"]["ErrorCode"]["description"].replace("\n", " "))

    def test_unsupported(self):
        # --reclaim none has no automatic mode.
        with Vm(HVMM, mem="256M", cpus=1, reclaim="none", workload="barrier") as vm:
            vm.wait_barrier(passed=0, timeout=60)
            self.check_error(raw(vm.sock, "PUT", "/api/v1/vm.auto-reclaim", b'{"enabled":true}',
                                 {"Content-Type": "application/json"}), "unsupported")
            vm.cont()

    def test_every_endpoint_and_error(self):
        # 2 GiB, floor 256 MiB; the guest holds 1 GiB at the first barrier and nothing at the second.
        with Vm(HVMM, mem="2G", cpus=1, workload="alloc 1G; barrier; free; barrier; sleep 60s") as vm:
            s = vm.sock
            vm.wait_barrier(passed=0, timeout=60)

            def get(path, schema):
                status, ctype, body = raw(s, "GET", path)
                self.assertEqual(status, 200, body)
                self.assertTrue(ctype.startswith("application/json"), ctype)
                j = json.loads(body)
                validate(j, schema)
                return j

            ping = get("/api/v1/vmm.ping", "Ping")
            self.assertEqual(ping["api"], "v1")
            info = get("/api/v1/vm.info", "VmInfo")
            self.assertEqual(info["mem_bytes"], 2 << 30)
            self.assertEqual(info["mem_min_bytes"], 256 * MIB)
            counters = get("/api/v1/vm.counters", "VmCounters")
            self.assertEqual(counters["mechanism"], "hyperalloc")

            status, ctype, metrics = raw(s, "GET", "/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(ctype.startswith("text/plain"), ctype)
            for line in metrics.splitlines():
                if line and not line.startswith("#"):
                    name, value = line.rsplit(" ", 1)
                    self.assertTrue(name.startswith("hvmm_"), line)
                    float(value)
            self.assertIn("hvmm_host_rss_bytes ", metrics)
            self.assertIn("hvmm_resize_duration_seconds_count 0", metrics)

            js = {"Content-Type": "application/json"}
            put = lambda path, body: raw(s, "PUT", path, body.encode(), js)  # noqa: E731
            self.check_error(put("/api/v1/vm.resize", "{"), "bad_request")
            self.check_error(put("/api/v1/vm.resize", '{"size":"2X"}'), "bad_size")
            self.check_error(raw(s, "GET", "/api/v1/vm.nothing"), "not_found")
            self.check_error(raw(s, "POST", "/api/v1/vm.resize", b'{"size":"1G"}', js), "method_not_allowed")
            self.check_error(put("/api/v1/vm.resize", '{"size":"' + "9" * (1 << 20) + '"}'), "payload_too_large")
            self.check_error(put("/api/v1/vm.resize", '{"size":"128M"}'), "below_floor")
            self.check_error(put("/api/v1/vm.resize", '{"size":"4G"}'), "above_maximum")
            # The guest holds 1 GiB: a resize to 512 MiB stops short and says where.
            failed = put("/api/v1/vm.resize", '{"size":"512M"}')
            self.check_error(failed, "resize_failed")
            validate(json.loads(failed[2])["error"]["resize"], "ResizeOutcome")
            on = put("/api/v1/vm.auto-reclaim", '{"enabled":true,"period":"1s"}')
            self.assertEqual(on[0], 200, on)
            validate(json.loads(on[2]), "AutoReclaimState")
            self.assertEqual(get("/api/v1/vm.info", "VmInfo")["auto_reclaim"], {"enabled": True, "period_ms": 1000})
            # A new period at run time, then off.
            again = put("/api/v1/vm.auto-reclaim", '{"enabled":true,"period":"200ms"}')
            self.assertEqual(again[0], 200, again)
            self.assertEqual(get("/api/v1/vm.info", "VmInfo")["auto_reclaim"], {"enabled": True, "period_ms": 200})
            off = put("/api/v1/vm.auto-reclaim", '{"enabled":false}')
            self.assertEqual(off[0], 200, off)
            validate(json.loads(off[2]), "AutoReclaimState")
            self.assertFalse(get("/api/v1/vm.info", "VmInfo")["auto_reclaim"]["enabled"])

            self.assertEqual(raw(s, "PUT", "/api/v1/vm.continue")[0], 204)
            vm.wait_barrier(passed=1, timeout=60)
            for size in ("512M", "2G"):
                status, _, body = put("/api/v1/vm.resize", json.dumps({"size": size}))
                self.assertEqual(status, 200, body)
                validate(json.loads(body), "ResizeOutcome")
            self.assertIn("hvmm_resize_duration_seconds_count 3", raw(s, "GET", "/metrics")[2])

            if shutil.which("curl"):
                out = subprocess.run(["curl", "-sS", "--fail-with-body", "--unix-socket", s,
                                      "http://localhost/api/v1/vm.info"], capture_output=True, text=True, timeout=30)
                self.assertEqual(out.returncode, 0, out.stderr)
                validate(json.loads(out.stdout), "VmInfo")

            self.assertEqual(raw(s, "PUT", "/api/v1/vm.shutdown")[0], 204)
            self.assertEqual(vm.wait(timeout=30), 0, vm.stderr())
            self.assertFalse(os.path.exists(s), "the socket file is removed at exit")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--hvmm", default=HVMM)
    args, rest = ap.parse_known_args()
    HVMM = args.hvmm
    unittest.main(argv=[sys.argv[0]] + rest)
