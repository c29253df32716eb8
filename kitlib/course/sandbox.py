"""The sandbox a submission's kernel runs in: its own PID, mount, network and IPC namespaces, a private file view,
an unprivileged user and resource limits. Standard library only: it runs as a script (`python -I sandbox.py`)
between `unshare` and the kernel, before kitlib is importable.

Inside, the root is a fresh tmpfs (its size is the disk limit) holding read-only binds of the system folders,
the Python installation and the kit's package alone (at /kit/kitlib), a fresh /proc of the PID namespace, a minimal
/dev, and the writable /work, /home/student and /tmp. The old root is detached (`pivot_root`), so the checkout,
the instructor's notebooks, other submissions and the gradebook folder do not exist in there. Then the process
drops to user 65534 (as root) or into a nested user namespace (unprivileged), sets its rlimits and execs the
kernel, which becomes PID 1: when it dies, or the grader kills `unshare`, every process it started dies with it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import platform
import resource
import signal
import subprocess
import sys

NOBODY = 65534
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}


@dataclasses.dataclass
class Limits:
    """What one submission may use: address space, processes (per user), CPU seconds, file size, files, disk."""

    memory_bytes: int = 4 << 30
    processes: int = 1024  # lesson 10's two TensorFlow workers and the kernel need more than 256 threads
    cpu_seconds: int = 600
    file_bytes: int = 64 << 20
    open_files: int = 1024
    disk_bytes: int = 256 << 20
    output_bytes: int = 1 << 20  # what the grader keeps of one cell's output (read there, not here)


def _libc() -> ctypes.CDLL:
    """The C library, with errno kept."""
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    """Raise OSError naming `what` when a libc call failed."""
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2)."""
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source} on {target}")


def _bind(source: str, target: str, writable: bool = False, device: bool = False) -> None:
    """Bind `source` at `target` (created), read-only unless `writable`; symlinks are copied as links."""
    if os.path.islink(source) and os.path.dirname(os.path.abspath(source)) == "/":
        os.symlink(os.readlink(source), target)
        return
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()  # noqa: SIM115
    _mount(source, target, None, MS_BIND)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (0 if device else MS_NODEV) | (0 if writable else MS_RDONLY)
    _mount(None, target, None, flags)


def _build_root(config: dict) -> None:
    """Make the private file view at config['root'] and pivot into it, detaching everything else."""
    root = config["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, f"size={config['limits']['disk_bytes']},mode=755")
    for source, target in config["read_only"]:
        if os.path.lexists(source):
            _bind(source, root + target)
    _bind(config["runtime"], root + config["runtime"], writable=True)
    os.makedirs(root + "/proc")
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV)
    os.makedirs(root + "/dev")
    for device in ("null", "zero", "full", "random", "urandom"):
        _bind("/dev/" + device, root + "/dev/" + device, writable=True, device=True)
    for folder, mode in (("/tmp", 0o1777), ("/dev/shm", 0o1777), ("/work", 0o755), ("/home/student", 0o755)):
        os.makedirs(root + folder, exist_ok=True)
        os.chmod(root + folder, mode)
        os.chown(root + folder, config["uid"], config["uid"])
    os.makedirs(root + "/.old")
    os.chdir(root)
    _check(_libc().syscall(SYS_PIVOT_ROOT[platform.machine()], b".", b".old"), "pivot_root")
    os.chroot(".")
    _check(_libc().umount2(b"/.old", MNT_DETACH), "detach the old root")
    os.rmdir("/.old")
    for folder in config["make"]:
        os.makedirs(folder, exist_ok=True)
        os.chown(folder, config["uid"], config["uid"])


def _drop_privileges(as_root: bool) -> None:
    """Become an unprivileged user: 65534 when started as root, else a nested user namespace without capabilities."""
    if as_root:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        return
    uid, gid = os.getuid(), os.getgid()
    _check(_libc().unshare(CLONE_NEWUSER), "unshare a user namespace")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{NOBODY} {uid} 1"), ("gid_map", f"{NOBODY} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def apply_limits(limits: dict) -> None:
    """Set the submission's rlimits (they are inherited by every process it starts)."""
    for which, value in ((resource.RLIMIT_AS, limits["memory_bytes"]), (resource.RLIMIT_NPROC, limits["processes"]),
                         (resource.RLIMIT_CPU, limits["cpu_seconds"]), (resource.RLIMIT_FSIZE, limits["file_bytes"]),
                         (resource.RLIMIT_NOFILE, limits["open_files"]), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))


def main(config: dict, command: list[str]) -> None:
    """Enter the sandbox described by `config` and exec `command` in it."""
    if config["isolate"]:
        subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, check=False)
        _build_root(config)
        _drop_privileges(not config["user_namespace"])
        _check(_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL), "keep the parent-death signal")  # setuid cleared it
    os.chdir(config["workdir"])
    apply_limits(config["limits"])
    os.execvpe(command[0], command, config["env"])


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2:])
