"""adtbase.sandbox: hostile programs stay inside; a well-behaved one returns its value.

Each hostile program tries to get out and reports what it managed; the test then checks from outside
that nothing reached the host (no file written, parent environment and process intact).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from adtbase import sandbox
from adtbase.errors import SandboxUnavailable
from adtbase.sandbox import Limits, run_python

ROOT = Path(__file__).resolve().parents[2]
needs_sandbox = pytest.mark.skipif(sandbox.available() is not None,
                                   reason=f"{sandbox.available()} (the sandbox fails closed here)")


def run(code: str, **kw):
    return run_python(textwrap.dedent(code), **kw)


@pytest.fixture
def outside(tmp_path: Path):
    """Paths outside the scratch folder a hostile program aims at; none may exist afterwards."""
    tag = uuid.uuid4().hex
    paths = [Path(tempfile.gettempdir()) / f"adt-escape-{tag}", tmp_path / f"escape-{tag}",
             Path.home() / f".adt-escape-{tag}", ROOT / f"adt-escape-{tag}"]
    yield paths
    for p in paths:
        present = p.exists()
        p.unlink(missing_ok=True)
        assert not present, f"the sandboxed program wrote {p}"


@needs_sandbox
def test_well_behaved_program_returns_its_value():
    res = run("""
        import math
        def solve(a, b):
            print("working")
            return {"sum": a + b, "root": math.sqrt(a * b)}
    """, inputs={"a": 2, "b": 8})
    assert res.ok, res
    assert res.value == {"sum": 10, "root": 4.0}
    assert res.stdout == "working\n" and res.error is None and not res.timed_out


@needs_sandbox
def test_result_global_and_program_errors():
    assert run("RESULT = [1, 2]").value == [1, 2]
    bad = run("def solve(x):\n    return 1 / x", inputs={"x": 0})
    assert not bad.ok and "ZeroDivisionError" in bad.error
    nan = run("RESULT = float('nan')")
    assert not nan.ok and "ValueError" in nan.error          # not JSON: refused, not passed on


@needs_sandbox
def test_no_network_to_localhost_or_outside():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        res = run("""
            import socket
            def solve(port):
                out = {}
                for host, p in (("127.0.0.1", port), ("1.1.1.1", 53), ("8.8.8.8", 443)):
                    s = socket.socket()
                    s.settimeout(2)
                    try:
                        s.connect((host, p))
                        out[host] = "connected"
                    except OSError as exc:
                        out[host] = type(exc).__name__
                try:
                    socket.getaddrinfo("example.com", 80)
                    out["dns"] = "resolved"
                except OSError as exc:
                    out["dns"] = type(exc).__name__
                return out
        """, inputs={"port": port})
        server.settimeout(0.5)
        with pytest.raises(OSError):
            server.accept()                                   # nobody came
    finally:
        server.close()
    assert res.ok, res
    assert "connected" not in res.value.values() and res.value["dns"] != "resolved", res.value


@needs_sandbox
def test_no_writes_outside_scratch(outside):
    res = run("""
        import os
        def solve(paths):
            done = []
            for p in paths + ["/usr/adt-escape", "/adt-escape", "/dev/adt-escape"]:
                try:
                    with open(p, "w") as f:
                        f.write("escaped")
                    done.append(p)
                except OSError:
                    pass
            with open("inside.txt", "w") as f:                # its own scratch folder works
                f.write("fine")
            return {"written": done, "cwd": os.getcwd(), "inside": open("inside.txt").read()}
    """, inputs={"paths": [str(p) for p in outside]})
    assert res.ok, res
    assert res.value["cwd"] == "/scratch" and res.value["inside"] == "fine"
    # A path may be "written" only inside the sandbox's own throwaway root (never the host's file).
    for p in res.value["written"]:
        assert not Path(p).exists() or p.startswith("/dev/")


@needs_sandbox
def test_host_files_are_not_visible(tmp_path):
    planted = tmp_path / "secret.txt"
    planted.write_text("secret")
    res = run("""
        import os
        def solve(paths, home):
            try:
                listing = os.listdir(home)
            except OSError:
                listing = []
            return {"exists": {p: os.path.exists(p) for p in paths}, "home": listing}
    """, inputs={"paths": [str(ROOT / "README.md"), str(planted), "/etc/passwd", "/proc/1/environ", "/tmp"],
                 "home": str(Path.home())})
    assert res.ok, res
    assert not any(res.value["exists"].values()), res.value
    # Only the path down to the interpreter's prefix (bound read-only) may show under $HOME.
    allowed = {Path(p).relative_to(Path.home()).parts[0] for p in sandbox._prefixes()
               if Path(p).is_relative_to(Path.home())}
    assert set(res.value["home"]) <= allowed, res.value["home"]


@needs_sandbox
def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("ADT_TEST_SECRET", "hunter2-" + uuid.uuid4().hex)
    res = run("""
        import os, subprocess
        def solve():
            shell = subprocess.run(["sh", "-c", "env"], capture_output=True, text=True).stdout
            return {"env": dict(os.environ), "shell": shell}
    """)
    assert res.ok, res
    secret = os.environ["ADT_TEST_SECRET"]
    assert "ADT_TEST_SECRET" not in res.value["env"] and secret not in res.value["shell"]
    assert set(res.value["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD", "LC_CTYPE"}


@needs_sandbox
def test_shell_runs_but_stays_inside(outside):
    res = run("""
        import os, subprocess
        def solve(paths):
            for p in paths:
                os.system(f"echo escaped > {p}")
            r = subprocess.run(["sh", "-c", "id -u; ls / ; ping -c1 -W1 127.0.0.1"],
                               capture_output=True, text=True)
            return r.stdout
    """, inputs={"paths": [str(p) for p in outside]})
    assert res.ok, res
    assert "scratch" in res.value and "home" not in res.value.split()


@needs_sandbox
def test_privileges_cannot_be_regained():
    res = run("""
        import ctypes, os
        def solve():
            libc = ctypes.CDLL(None, use_errno=True)
            out = {}
            try:
                os.chroot("/scratch")
                out["chroot"] = "ok"
            except OSError as exc:
                out["chroot"] = exc.errno
            # remount / read-write (MS_REMOUNT | MS_BIND)
            out["remount"] = libc.mount(None, b"/", None, 32 | 4096, None)
            out["sethostname"] = libc.sethostname(b"x", 1)
            return out
    """)
    assert res.ok, res
    assert res.value["chroot"] != "ok" and res.value["remount"] == -1
    assert res.value["sethostname"] == -1                      # no capability left, even in its namespace


@needs_sandbox
def test_fork_bomb_is_capped_and_reaped():
    start = time.monotonic()
    res = run("""
        import os, time
        n = 0
        try:
            while n < 10000:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
        except OSError:
            pass
        RESULT = n
    """, limits=Limits(processes=16, wall_s=20))
    assert res.ok, res
    assert res.value < 16
    assert time.monotonic() - start < 15                       # the sleeping children died with it


@needs_sandbox
def test_memory_limit():
    res = run("RESULT = len(bytearray(10 * 2**30))", limits=Limits(memory_bytes=512 << 20))
    assert not res.ok and "MemoryError" in res.error


@needs_sandbox
def test_cpu_and_wall_limits():
    spin = run("while True:\n    pass", limits=Limits(cpu_s=1, wall_s=20))
    assert not spin.ok and not spin.timed_out and "CPU" in spin.error
    start = time.monotonic()
    sleep = run("import time\ntime.sleep(60)", limits=Limits(wall_s=1.5))
    assert sleep.timed_out and not sleep.ok and time.monotonic() - start < 10


@needs_sandbox
def test_output_limit():
    res = run("import sys\nsys.stdout.write('x' * (100 << 20))\nRESULT = 1",
              limits=Limits(file_bytes=4 << 20, output_bytes=1 << 20))
    assert not res.ok and ("File too large" in res.error or "file size limit" in res.error)
    assert res.output_truncated and len(res.stdout) == 1 << 20


@needs_sandbox
def test_scratch_is_bounded_and_off_the_host_disk():
    res = run("""
        import os
        written = 0
        try:
            for i in range(1000):
                with open(f"f{i}", "wb") as f:
                    f.write(b"x" * (1 << 20))
                written += 1
        except OSError as exc:
            RESULT = [written, exc.errno]
    """, limits=Limits(scratch_bytes=8 << 20))
    assert res.ok, res
    written, errno_ = res.value
    assert written <= 8 and errno_ == 28                          # ENOSPC at the tmpfs's size
    many = run("""
        import os
        n = 0
        try:
            while n < 100000:
                os.mkdir(f"d{n}")
                n += 1
        except OSError:
            pass
        RESULT = n
    """, limits=Limits(scratch_files=200))
    assert many.ok and many.value < 200


@needs_sandbox
def test_nested_namespaces_do_not_unlock_mounts(outside):
    res = run("""
        import ctypes
        def solve(path):
            libc = ctypes.CDLL(None, use_errno=True)
            made = libc.unshare(0x10000000 | 0x00020000)        # a new user + mount namespace of its own
            remount = libc.mount(None, b"/usr", None, 32 | 4096, None)   # read-write again?
            try:
                open("/usr/adt-escape", "w").write("x")
                wrote = True
            except OSError:
                wrote = False
            try:
                open(path, "w").write("x")
                wrote_host = True
            except OSError:
                wrote_host = False
            return [made, remount, wrote, wrote_host]
    """, inputs={"path": str(outside[0])})
    assert res.ok, res
    made, remount, wrote, wrote_host = res.value
    assert remount == -1 and not wrote and not wrote_host


@needs_sandbox
def test_wall_limit_kills_processes_that_left_the_session():
    """A child that starts its own session escapes the kill of the launcher's group, not the pid namespace."""
    token = "adt-sandbox-" + uuid.uuid4().hex
    res = run("""
        import os, sys, time
        def solve(token):
            if os.fork() == 0:                                  # a child in a session of its own
                os.setsid()
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", token])
            os.setsid()                                         # and the program itself (pid 1 inside)
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", token])
    """, inputs={"token": token}, limits=Limits(wall_s=2))
    assert res.timed_out
    time.sleep(0.5)
    left = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token.encode() in cmdline.read_bytes():
                left.append(cmdline.parent.name)
        except OSError:
            pass
    for pid in left:                                            # a failing run leaves nothing behind either
        with contextlib.suppress(OSError):
            os.kill(int(pid), signal.SIGKILL)
    assert not left, f"processes left running: {left}"


@needs_sandbox
def test_parent_unharmed_and_scratch_removed():
    before = set(Path(tempfile.gettempdir()).glob("adt-sandbox-*"))
    env = dict(os.environ)
    run("import os\nos.kill(1, 9)\nos.kill(os.getppid(), 9)\nos.killpg(0, 9)")
    assert dict(os.environ) == env
    assert set(Path(tempfile.gettempdir()).glob("adt-sandbox-*")) <= before


def test_unavailable_isolation_fails_closed(monkeypatch):
    monkeypatch.setattr(sandbox, "_probe", lambda: "sandbox: user namespaces disabled (test)")
    with pytest.raises(SandboxUnavailable, match="user namespaces"):
        run_python("RESULT = 1")
