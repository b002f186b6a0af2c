"""The sandbox's launcher (run by ``adtbase.sandbox`` as ``python -I -S -B _sandbox_init.py SPEC``).

Standard library only (ctypes for the syscalls); Linux x86_64/aarch64 only (the pivot_root number).
1. The launcher forks; the child unshares user, mount, network, pid, ipc and uts namespaces and the
   launcher (still outside, with the caller's rights) writes its uid/gid maps: the caller's uid is
   root inside; when the caller is real root, inside uid 1 is mapped to ``nobody`` (65534) and the
   program runs as that, so that the kernel's process-count limit applies to it (it exempts real root).
2. The child forks pid 1 of the new pid namespace, which builds a new root on a small tmpfs: read-only
   bind mounts of the system directories Python needs (``/usr``, ``/lib*`` and their links) and of the
   interpreter's prefix, ``/dev/null|zero|urandom|random``, and at ``/scratch`` a size-bounded tmpfs
   holding a copy of the program and its inputs (read-write); no ``/proc``, ``/sys``, ``/etc``, ``/home``, ``/tmp``. It pivots into that root and
   detaches the old one, so no path leads out. The network namespace is empty (loopback down).
3. It drops every capability for good (bounding set emptied, securebits locked so uid 0 gets none back
   on exec, no-new-privs), so the program cannot remount, unmount or chroot its way out; sets the
   resource limits; and execs a fresh interpreter that runs the program.
A failed step exits 97 with the step on stderr: the program never runs half-confined. If the
launcher dies, its child and pid 1 die with it (parent-death signal), which kills the whole pid
namespace.
"""

import ctypes
import json
import os
import platform
import resource
import signal
import sys

EXIT_SETUP = 97
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
CLONE_FLAGS = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 38, 24, 28
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
# SECBIT_NOROOT | NOROOT_LOCKED | NO_SETUID_FIXUP | NO_SETUID_FIXUP_LOCKED | KEEP_CAPS_LOCKED
# | NO_CAP_AMBIENT_RAISE | NO_CAP_AMBIENT_RAISE_LOCKED
SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
NEW_ROOT_DIRS = ("usr", "bin", "lib", "lib64", "lib32", "libx32", "sbin")

libc = ctypes.CDLL(None, use_errno=True)


def fail(step: str) -> None:
    err = ctypes.get_errno()
    sys.stderr.write(f"sandbox setup failed at {step}: {os.strerror(err) if err else 'error'}\n")
    sys.stderr.flush()
    os._exit(EXIT_SETUP)


def mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()
    if libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        fail(f"mount {src} -> {dst}")


def bind_readonly(src: str, dst: str, *, file: bool = False) -> None:
    if file:
        open(dst, "w").close()
    else:
        os.makedirs(dst, exist_ok=True)
    mount(src, dst, None, MS_BIND | MS_REC)
    # A bind mount takes new flags only through a remount; nosuid/nodev as well as read-only.
    mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def build_root(spec: dict) -> None:
    root = spec["root"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)            # nothing we mount propagates to the host
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for name in NEW_ROOT_DIRS:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(root, name))
        elif os.path.isdir(host):
            bind_readonly(host, os.path.join(root, name))
    for prefix in spec["prefixes"]:                          # the interpreter, where not under /usr
        bind_readonly(prefix, root + prefix)
    os.makedirs(os.path.join(root, "dev"))
    for dev in ("null", "zero", "urandom", "random"):
        open(os.path.join(root, "dev", dev), "w").close()
        mount("/dev/" + dev, os.path.join(root, "dev", dev), None, MS_BIND)
        mount(None, os.path.join(root, "dev", dev), None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC)
    # The scratch folder is a tmpfs of its own, bounded in bytes and files: nothing the program writes
    # reaches the host's disk, and it vanishes with the mount namespace.
    scratch = os.path.join(root, "scratch")
    os.makedirs(scratch)
    uid = spec["inner_uid"]
    mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={spec['scratch_bytes']},nr_inodes={spec['scratch_files']},mode=0700,uid={uid},gid={uid}")
    for name in ("program.py", "inputs.json"):
        with open(os.path.join(spec["inputs"], name), "rb") as src, open(os.path.join(scratch, name), "wb") as dst:
            dst.write(src.read())
        os.chown(os.path.join(scratch, name), uid, uid)
    os.makedirs(os.path.join(root, ".old"))
    os.chdir(root)
    number = PIVOT_ROOT.get(platform.machine())
    if number is None:
        fail(f"pivot_root (no syscall number for {platform.machine()})")
    if libc.syscall(number, b".", b".old") != 0:
        fail("pivot_root")
    os.chroot(".")
    if libc.umount2(b"/.old", MNT_DETACH) != 0:
        fail("umount old root")
    os.rmdir("/.old")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir("/scratch")


def secure_bits_and_bounding_set() -> None:
    if libc.prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0) != 0:
        fail("securebits")
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if cap < 36:                                       # CAP_LAST_CAP is 40 on 6.x kernels, 37+ since 5.9
        fail("capability bounding set")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def clear_capabilities() -> None:
    # capset(version 3, pid 0) with all-zero sets: effective, permitted and inheritable emptied.
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) != 0:
        fail("capset")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        fail("no_new_privs")


def set_limits(limits: dict) -> None:
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def become_program_user(spec: dict) -> None:
    """Real root's sandboxes run as inside uid 1 (outside: nobody); capabilities are still held."""
    if spec["inner_uid"]:
        os.setgroups([])
        os.setresgid(spec["inner_uid"], spec["inner_uid"], spec["inner_uid"])
        os.setresuid(spec["inner_uid"], spec["inner_uid"], spec["inner_uid"])


def write_maps(pid: int, spec: dict) -> None:
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        uid_map, gid_map = f"0 0 1\n1 {spec['nobody']} 1\n", f"0 0 1\n1 {spec['nobody']} 1\n"
    else:
        uid_map, gid_map = f"0 {uid} 1\n", f"0 {gid} 1\n"
        with open(f"/proc/{pid}/setgroups", "w") as f:    # required before an unprivileged gid_map
            f.write("deny")
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(uid_map)
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(gid_map)


def die_with_parent() -> None:
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        fail("parent-death signal")


def wait_status(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def child(spec: dict, unshared_w: int, mapped_r: int) -> None:
    die_with_parent()
    if libc.unshare(CLONE_FLAGS) != 0:
        fail("unshare (user, mount, network, pid namespaces)")
    os.write(unshared_w, b"u")
    if os.read(mapped_r, 1) != b"m":
        fail("uid map")
    pid = os.fork()                                        # pid 1 of the new pid namespace
    if pid == 0:
        try:
            die_with_parent()
            build_root(spec)
            secure_bits_and_bounding_set()
            become_program_user(spec)
            die_with_parent()                              # a uid change clears the parent-death signal
            clear_capabilities()
            set_limits(spec["rlimits"])
            os.execve(spec["python"], [spec["python"], "-I", "-S", "-B", "-c", spec["runner"]], spec["env"])
        except OSError as exc:
            sys.stderr.write(f"sandbox setup failed: {exc}\n")
        os._exit(EXIT_SETUP)
    code = wait_status(pid)
    os._exit(code if code >= 0 else 128 - code)


def main() -> None:
    spec = json.loads(sys.argv[1])
    unshared_r, unshared_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        child(spec, unshared_w, mapped_r)
    if os.read(unshared_r, 1) != b"u":
        sys.exit(f"sandbox setup failed: the namespaced child exited ({wait_status(pid)})")
    try:
        write_maps(pid, spec)
    except OSError as exc:
        os.kill(pid, signal.SIGKILL)
        sys.stderr.write(f"sandbox setup failed at uid map: {exc}\n")
        sys.exit(EXIT_SETUP)
    os.write(mapped_w, b"m")
    code = wait_status(pid)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
