"""Run untrusted Python (a model-written solver program, say) in a sandbox; the one place that does.

``run_python(code, inputs=, limits=) -> SandboxResult``. The program runs in a separate process tree
(``adtbase/_sandbox_init.py`` sets it up; its docstring lists the steps) under kernel-level isolation:

- network: its own empty network namespace (loopback down): no connection to 127.0.0.1 or outside;
- files: a new root (pivot_root) holding only read-only system directories and the interpreter, and
  ``/scratch`` (the cwd, ``HOME`` and ``TMPDIR``), a fresh tmpfs bounded in bytes and files that
  vanishes with the run (the host's disk is never written); no ``/proc``, ``/home``, ``/tmp``,
  ``/etc``, repository or bank;
- privileges: a user namespace, every capability dropped for good (bounding set emptied, securebits
  locked, no-new-privs), so no remount, chroot or setuid binary gets out; real root's runs become
  ``nobody`` inside;
- processes: its own pid namespace (killing the launcher kills every process the program made);
- limits (``Limits``): CPU seconds, wall seconds (the whole tree killed), address space, size of any
  file written (stdout and stderr are files too), scratch bytes and files, process count, open files,
  no core files, and the stdout/stderr kept;
- environment: only ``PATH``, ``HOME``, ``TMPDIR``, ``LANG``; the interpreter runs ``-I -S -B``.
Not enforced: a seccomp filter (every syscall stays open, inside the namespaces above) and CPU share.

It fails closed: where the kernel refuses a namespace (user namespaces disabled, an AppArmor rule) or a
step cannot be done, ``SandboxUnavailable`` names what is missing and nothing runs unconfined.
``available()`` says so without raising (tests skip on it).

The program's contract: its module code runs as ``__main__`` with ``INPUTS`` (the inputs dict) bound;
if it defines a function named ``entry`` (default ``solve``) that is called as ``solve(**inputs)``,
otherwise the module global ``RESULT`` is the value. The value must be JSON (``NaN`` refused) and
comes back decoded in ``SandboxResult.value``.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adtbase.errors import SandboxUnavailable

__all__ = ["Limits", "SandboxResult", "run_python", "available", "check", "SandboxUnavailable"]

LAUNCHER = Path(__file__).with_name("_sandbox_init.py")
EXIT_SETUP = 97                    # the launcher's exit code for a failed setup step
NOBODY = 65534                     # real root's programs run as this uid/gid outside
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin")
MACHINES = ("x86_64", "aarch64")   # where the launcher knows pivot_root's syscall number
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/scratch", "TMPDIR": "/scratch", "LANG": "C.UTF-8"}
MiB = 1 << 20

# Runs inside the sandbox as `python -I -S -B -c RUNNER`: loads the program from the scratch folder
# and writes {"ok", "value"|"error"} as JSON to the result file descriptor.
RUNNER = """
import json, os, sys, traceback
def _run():
    out = os.fdopen(int(os.environ.pop("ADT_RESULT_FD")), "w")
    entry = os.environ.pop("ADT_ENTRY")
    with open("/scratch/program.py", encoding="utf-8") as f:
        source = f.read()
    with open("/scratch/inputs.json", encoding="utf-8") as f:
        inputs = json.load(f)
    scope = {"__name__": "__main__", "__builtins__": __builtins__, "INPUTS": inputs}
    try:
        exec(compile(source, "program.py", "exec"), scope)
        fn = scope.get(entry)
        value = fn(**inputs) if callable(fn) else scope.get("RESULT")
        text = json.dumps({"ok": True, "value": value}, allow_nan=False)
    except BaseException as exc:
        line = traceback.format_exception_only(type(exc), exc)[-1].strip()
        text = json.dumps({"ok": False, "error": line[:2000]})
    out.write(text)
    out.flush()
_run()
"""


@dataclass(frozen=True)
class Limits:
    """What one run may use; every limit is enforced by the kernel except ``output_bytes`` (kept)."""

    cpu_s: int = 5                     # RLIMIT_CPU (SIGXCPU, then SIGKILL)
    wall_s: float = 10.0               # the whole process tree is killed after this
    memory_bytes: int = 512 * MiB      # RLIMIT_AS per process
    file_bytes: int = 16 * MiB         # RLIMIT_FSIZE: any one file written, stdout/stderr included
    processes: int = 16                # RLIMIT_NPROC, counted inside the sandbox's user namespace
    open_files: int = 64               # RLIMIT_NOFILE
    output_bytes: int = 1 * MiB        # of stdout and of stderr kept in the result
    scratch_bytes: int = 64 * MiB      # the /scratch tmpfs (in memory, never the host's disk)
    scratch_files: int = 1024          # files and folders in /scratch

    def rlimits(self) -> dict[str, int]:
        return {"RLIMIT_CPU": int(self.cpu_s), "RLIMIT_AS": int(self.memory_bytes),
                "RLIMIT_FSIZE": int(max(self.file_bytes, self.output_bytes)),
                "RLIMIT_NPROC": int(self.processes), "RLIMIT_NOFILE": int(self.open_files),
                "RLIMIT_CORE": 0}


@dataclass(frozen=True)
class SandboxResult:
    ok: bool                   # the program ran and returned a JSON value
    value: Any                 # that value, decoded (None unless ok)
    stdout: str
    stderr: str
    error: str | None          # why not ok: the program's exception, a limit, a crash
    timed_out: bool            # killed at the wall-time limit
    exit_code: int | None      # the sandbox's exit code (None when killed at the wall limit)
    output_truncated: bool     # stdout or stderr was longer than Limits.output_bytes
    wall_s: float


def _prefixes() -> list[str]:
    """The interpreter's own directories that are not under a system directory already bound."""
    out = []
    for p in {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}:
        if not any(p == d or p.startswith(d + "/") for d in SYSTEM_DIRS):
            out.append(p)
    return sorted(out)


def _python() -> str:
    exe = os.path.realpath(sys.executable)
    bound = list(SYSTEM_DIRS) + _prefixes()
    if not any(exe.startswith(d + "/") for d in bound):
        raise SandboxUnavailable(f"sandbox: the interpreter {exe} lies outside its prefix "
                                 f"({', '.join(_prefixes()) or sys.base_prefix}); nothing to bind it from")
    return exe


@functools.cache
def _probe() -> str | None:
    if sys.platform != "linux":
        return f"sandbox: needs Linux namespaces; this is {sys.platform}"
    if platform.machine() not in MACHINES:
        return f"sandbox: pivot_root's syscall number is known for {', '.join(MACHINES)}, not {platform.machine()}"
    try:
        _python()
    except SandboxUnavailable as exc:
        return str(exc)
    res = _run("RESULT = 42", {}, Limits(), "solve")
    if res.exit_code == EXIT_SETUP or res.value != 42:
        detail = (res.stderr.strip() or res.error or "no output").splitlines()[-1]
        return (f"sandbox: the isolation could not be set up ({detail}); user namespaces must be allowed "
                "(sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, "
                "kernel.apparmor_restrict_unprivileged_userns=0) or run as root")
    return None


def available() -> str | None:
    """None when the sandbox works on this machine, else the reason it does not (probed once)."""
    return _probe()


def check() -> None:
    """Raise ``SandboxUnavailable`` naming what is missing, where the sandbox cannot be set up."""
    reason = _probe()
    if reason:
        raise SandboxUnavailable(reason)


def run_python(code: str, *, inputs: dict | None = None, limits: Limits | None = None,
               entry: str = "solve") -> SandboxResult:
    """Run ``code`` in the sandbox (module docstring: what is enforced, the program's contract)."""
    check()
    return _run(code, dict(inputs or {}), limits or Limits(), entry)


def _run(code: str, inputs: dict, limits: Limits, entry: str) -> SandboxResult:
    workdir = Path(tempfile.mkdtemp(prefix="adt-sandbox-"))
    try:
        return _run_in(workdir, code, inputs, limits, entry)
    finally:
        _remove(workdir)


def _run_in(workdir: Path, code: str, inputs: dict, limits: Limits, entry: str) -> SandboxResult:
    given, root = workdir / "given", workdir / "root"      # the program and inputs (copied in), a mount point
    given.mkdir()
    root.mkdir()
    (given / "program.py").write_text(code, encoding="utf-8")
    (given / "inputs.json").write_text(json.dumps(inputs), encoding="utf-8")
    as_root = os.geteuid() == 0
    paths = {name: workdir / name for name in ("stdout", "stderr", "result")}
    files = {name: open(p, "w+b") for name, p in paths.items()}
    try:
        result_fd = files["result"].fileno()
        spec = {"root": str(root), "inputs": str(given), "scratch_bytes": int(limits.scratch_bytes),
                "scratch_files": int(limits.scratch_files), "prefixes": _prefixes(), "python": _python(),
                "runner": RUNNER, "rlimits": limits.rlimits(), "inner_uid": 1 if as_root else 0,
                "nobody": NOBODY, "env": {**ENV, "ADT_RESULT_FD": str(result_fd), "ADT_ENTRY": entry}}
        start = time.monotonic()
        proc = subprocess.Popen([_python(), "-I", "-S", "-B", str(LAUNCHER), json.dumps(spec)],
                                stdin=subprocess.DEVNULL, stdout=files["stdout"], stderr=files["stderr"],
                                pass_fds=(result_fd,), env=dict(ENV), start_new_session=True, cwd="/")
        timed_out = False
        try:
            code_ = proc.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
            code_ = None
        wall = time.monotonic() - start
        _kill(proc)             # anything left in its session (the pid namespace is already gone)
        out, out_cut = _read(paths["stdout"], limits.output_bytes)
        err, err_cut = _read(paths["stderr"], limits.output_bytes)
        envelope = _envelope(paths["result"])
    finally:
        for f in files.values():
            f.close()
    return _result(envelope, out, err, code_, timed_out, out_cut or err_cut, wall, limits)


def _result(envelope: dict | None, out: str, err: str, code: int | None, timed_out: bool, cut: bool,
            wall: float, limits: Limits) -> SandboxResult:
    ok, value, error = False, None, None
    if timed_out:
        error = f"wall-time limit ({limits.wall_s:g} s) reached; the process tree was killed"
    elif envelope is not None and envelope.get("ok") is True and code == 0:
        ok, value = True, envelope.get("value")
    elif envelope is not None and envelope.get("ok") is False:
        error = str(envelope.get("error"))
    elif code == 128 + signal.SIGXFSZ:
        error = f"file size limit ({max(limits.file_bytes, limits.output_bytes)} bytes) reached"
    elif code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        error = f"killed (CPU limit {limits.cpu_s} s or memory); exit {code}"
    elif code == EXIT_SETUP:
        error = "sandbox setup failed: " + (err.strip().splitlines() or [""])[-1]
    else:
        error = f"exited with code {code} without a result"
    return SandboxResult(ok=ok, value=value, stdout=out, stderr=err, error=error, timed_out=timed_out,
                         exit_code=code, output_truncated=cut, wall_s=wall)


def _envelope(path: Path) -> dict | None:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(64 * MiB))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read(path: Path, limit: int) -> tuple[str, bool]:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    return data[:limit].decode("utf-8", "replace"), len(data) > limit


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _remove(workdir: Path) -> None:
    """Delete the work folder, whatever modes the program left on its files."""
    def unlock(func: Any, path: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(path), stat.S_IRWXU)
            os.chmod(path, stat.S_IRWXU)
        except OSError:
            pass
        func(path)
    shutil.rmtree(workdir, onerror=unlock)
