"""Python run in a throwaway sandbox: no network, nothing of the server, hard limits.

``run_python(code, stdin=...)`` starts the code in bubblewrap (``bwrap``) and returns an ``Execution``.
What the sandbox is, and why each part is there:

- **Namespaces** (bwrap): a private network namespace (only its own loopback: no route out, no DNS,
  and 127.0.0.1 is not the server's), a private PID namespace (the server's processes and their
  ``/proc/<pid>/environ`` do not exist inside), IPC, UTS and cgroup namespaces, and a private mount
  namespace whose root is an empty tmpfs holding only what Python needs, read-only: ``/usr`` (libc,
  shared libraries) and the base interpreter's own prefix (mounted at ``/opt/python``, with its
  site-packages covered by an empty tmpfs). The repository, ``var/`` (the SQLite file, the secret key
  file), the virtualenv, ``/etc``, ``/home``, ``/root`` and ``/tmp`` of the host are simply not there.
- **An unprivileged user.** When the server runs as root, bwrap runs privileged (it can reach an
  interpreter under root's 0700 home) and a small launcher inside the sandbox drops to a fresh
  uid/gid no other process has (so even a file that leaked in as root's 0600 would be unreadable,
  and the process limit counts this run only), then execs a second, unprivileged bwrap that puts the
  code in a user namespace mapping only that uid and refuses further user namespaces (so the
  code cannot gain capabilities in namespaces of its own). Without root, the one bwrap does that.
  Either way the code has no capabilities at all and ``no_new_privs`` makes setuid programs inert.
- **Limits.** The launcher sets them with ``setrlimit`` before it execs the code's interpreter: CPU
  seconds, address space (memory), processes, file size, open files, no core files. The parent adds a
  wall-clock limit (it kills the process group and the namespace's init, which takes every process
  in the namespace with it) and caps what it keeps of stdout and stderr (past the cap it stops the run).
- **A throwaway working directory.** ``/sandbox`` (also ``/tmp``) is a size-capped tmpfs that exists
  only in the run's mount namespace: it is freed when the last process of the run is gone, even if the
  server crashes, and no file of it ever reaches the server's disk.
- **A clean interpreter.** ``python -I -S``: no site-packages, no user site, no ``PYTHON*`` variables,
  and an explicit minimal environment (PATH, HOME, LANG): nothing of the server's.

``run_python`` returns only once every process of the run is gone. It never blocks the event loop.
Needs Linux and ``bwrap`` (Debian package ``bubblewrap``); without it ``SandboxUnavailable`` is raised
and code does not run at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import site
import sys
import sysconfig
import time
import weakref
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from django.conf import settings

log = logging.getLogger(__name__)

Limit = Literal["timeout", "memory", "output"]

WORKDIR = "/sandbox"  # the code's working directory and HOME inside the sandbox
PYTHON_ROOT = "/opt/python"  # where a base interpreter living outside /usr is mounted
# Fresh uids for runs when the server is root: far above any real account and above the ranges
# container tools hand out (subuid 100000+), one per run so no two runs share a process count.
RUN_UID_BASE = 1 << 30
RUN_UID_SPAN = 1 << 24
OPEN_FILES = 256
DRAIN_S = 5.0  # after a kill, how long the pipes may take to close (they close when the processes die)

# Runs inside the sandbox as its first program: limits, then (as root) a fresh uid and the inner
# unprivileged bwrap, then a word on the ready fd (so a sandbox that failed to start is told apart
# from code that failed), then exec of the code's interpreter. Standard library only; no user input.
LAUNCHER = """\
import os, resource, sys
BWRAP = "/opt/bwrap"
cpu, memory, procs, fsize, files, uid, ready = (int(a) for a in sys.argv[1:8])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_NPROC, (procs, procs))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
code = [sys.executable, "-I", "-S", "-B", "-u", "-X", "utf8", "main.py"]
if uid >= 0:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    code = [BWRAP, "--unshare-user", "--disable-userns", "--uid", str(uid), "--gid", str(uid),
            "--bind", "/", "/", "--chdir", os.getcwd(), "--die-with-parent", "--", *code]
os.write(ready, b"ok")
os.close(ready)
os.execv(code[0], code)
"""


class SandboxUnavailable(RuntimeError):
    """Code cannot run on this server (no bwrap, or namespaces not permitted); nothing was run."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may use. ``from_settings`` reads the CHIMERA_SANDBOX_* settings."""

    cpu_s: int = 5
    wall_s: float = 10.0
    memory_mb: int = 256
    max_procs: int = 32
    output_bytes: int = 65536  # per stream (stdout, stderr)
    disk_mb: int = 16  # the working directory (tmpfs)

    @classmethod
    def from_settings(cls) -> Limits:
        default = cls()
        return cls(
            cpu_s=int(getattr(settings, "CHIMERA_SANDBOX_CPU_S", default.cpu_s)),
            wall_s=float(getattr(settings, "CHIMERA_SANDBOX_WALL_S", default.wall_s)),
            memory_mb=int(getattr(settings, "CHIMERA_SANDBOX_MEMORY_MB", default.memory_mb)),
            max_procs=int(getattr(settings, "CHIMERA_SANDBOX_MAX_PROCS", default.max_procs)),
            output_bytes=int(getattr(settings, "CHIMERA_SANDBOX_OUTPUT_BYTES", default.output_bytes)),
            disk_mb=int(getattr(settings, "CHIMERA_SANDBOX_DISK_MB", default.disk_mb)),
        )


@dataclass(frozen=True, slots=True)
class Execution:
    """How one run ended.

    ``exit_code`` is the code's exit status, or None when it was killed by ``signal`` (bwrap reports
    a death by signal N as status 128+N, so a script that itself exits with 129..159 reads as killed).
    ``limit`` says which limit stopped it, if one did: "timeout" (wall clock or CPU time), "memory"
    (the code died of MemoryError under the address-space limit) or "output" (more than the cap was
    written; the run was stopped). Each stream keeps at most ``Limits.output_bytes``.
    """

    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    exit_code: int | None
    signal: int | None
    duration_ms: int
    limit: Limit | None

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated

    @property
    def timed_out(self) -> bool:
        return self.limit == "timeout"

    @property
    def signal_name(self) -> str | None:
        if self.signal is None:
            return None
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"


async def run_python(code: str, *, stdin: str = "", limits: Limits | None = None) -> Execution:
    """Run ``code`` as a Python 3 script in the sandbox, feeding it ``stdin``; see the module doc.

    Raises ``SandboxUnavailable`` when code cannot run here, ``ValueError`` for text that is not
    valid Unicode (unpaired surrogates). At most CHIMERA_SANDBOX_PARALLEL runs go at once per
    process; more wait their turn.
    """
    limits = limits or Limits.from_settings()
    source = code.encode("utf-8")  # UnicodeEncodeError is a ValueError
    data = stdin.encode("utf-8")
    bwrap = _bwrap()
    async with _gate():
        return await _Run(bwrap, source, data, limits).execute()


# ---- one run ---------------------------------------------------------------------------------
class _Run:
    def __init__(self, bwrap: str, source: bytes, stdin: bytes, limits: Limits) -> None:
        self.bwrap = bwrap
        self.source = source
        self.stdin = stdin
        self.limits = limits
        self.overflow = asyncio.Event()
        self.ns_init: int | None = None  # a pidfd for the PID namespace's init (bwrap's pid 1)

    async def execute(self) -> Execution:
        fds: list[int] = []
        try:
            info_r, info_w = os.pipe()  # bwrap writes the namespace init's pid here
            ready_r, ready_w = os.pipe()  # the launcher writes "ok" once limits are set
            code_fd = os.memfd_create("main.py")  # bwrap copies it to /sandbox/main.py
            fds += [info_r, info_w, ready_r, ready_w, code_fd]
            written = 0
            while written < len(self.source):
                written += os.write(code_fd, self.source[written:])
            os.lseek(code_fd, 0, os.SEEK_SET)
            argv = _command(self.bwrap, self.limits, info_fd=info_w, ready_fd=ready_w, code_fd=code_fd)
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=_HOST_ENV,
                pass_fds=(info_w, ready_w, code_fd),
                # Its own session: no controlling terminal for anything inside (no TIOCSTI into an
                # operator's shell), and a process group of its own to kill.
                start_new_session=True,
                cwd="/",
            )
            for fd in (info_w, ready_w, code_fd):
                fds.remove(fd)
                os.close(fd)
            try:
                return await self._supervise(proc, started, info_r, ready_r)
            finally:
                if proc.returncode is None:  # cancelled (the tool's own time limit): leave nothing behind
                    await self._stop(proc)
        finally:
            if self.ns_init is not None:
                os.close(self.ns_init)
            for fd in fds:
                os.close(fd)

    async def _supervise(
        self, proc: asyncio.subprocess.Process, started: float, info_r: int, ready_r: int
    ) -> Execution:
        assert proc.stdin and proc.stdout and proc.stderr
        cap = self.limits.output_bytes
        out = asyncio.create_task(_collect(proc.stdout, cap, self.overflow))
        err = asyncio.create_task(_collect(proc.stderr, cap, self.overflow))
        feed = asyncio.create_task(_feed(proc.stdin, self.stdin))
        info = asyncio.create_task(self._open_ns_init(info_r, proc.pid))
        exited = asyncio.create_task(proc.wait())
        overflowed = asyncio.create_task(self.overflow.wait())
        stopped: Limit | None = None
        try:
            await asyncio.wait(
                {exited, overflowed}, timeout=self.limits.wall_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not exited.done():
                stopped = "output" if self.overflow.is_set() else "timeout"
                await self._stop(proc)
            duration_ms = int((time.monotonic() - started) * 1000)
            stdout, stderr = await asyncio.wait_for(asyncio.gather(out, err), DRAIN_S)
        finally:
            for task in (out, err, feed, info, exited, overflowed):
                task.cancel()
        if stopped is None and self.overflow.is_set():
            stopped = "output"  # it exited while we were about to stop it: still over the cap
        status = proc.returncode
        assert status is not None
        if not _ready(ready_r) and stopped is None:
            # bwrap or the launcher failed before the code ran: say so loudly, never blame the code.
            log.error("sandbox failed to start (status %s): %s", status, stderr.tail.decode(errors="replace"))
            raise SandboxUnavailable("The sandbox failed to start; see the server log.")
        exit_code: int | None
        if stopped is not None:
            exit_code, sig = None, signal.SIGKILL.value
        elif status > 128 and status - 128 < signal.NSIG:
            exit_code, sig = None, status - 128
        else:
            exit_code, sig = status, None
        if stopped is None:
            if sig == signal.SIGXCPU:
                stopped = "timeout"  # the CPU-seconds limit
            elif exit_code == 1 and stderr.last_line().startswith(b"MemoryError"):
                stopped = "memory"
        return Execution(
            stdout=stdout.text(),
            stderr=stderr.text(),
            stdout_truncated=stdout.truncated,
            stderr_truncated=stderr.truncated,
            exit_code=exit_code,
            signal=sig,
            duration_ms=duration_ms,
            limit=stopped,
        )

    async def _open_ns_init(self, info_r: int, bwrap_pid: int) -> None:
        """Read bwrap's info (the PID namespace init's pid) and hold a pidfd for that process."""
        raw = await _read_to_end(info_r)
        try:
            pid = int(json.loads(raw)["child-pid"])
            pidfd = os.pidfd_open(pid)
        except (ValueError, KeyError, TypeError, ProcessLookupError):
            return  # bwrap failed early, or the run is already over
        # The pid was read while bwrap (its parent) still ran; check it was not reused meanwhile.
        if _parent_of(pid) != bwrap_pid:
            os.close(pidfd)
            return
        self.ns_init = pidfd

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        """Kill every process of the run and return once they are all gone."""
        # The namespace's init first: when it dies the kernel kills everything in the namespace,
        # including processes that left our process group (setsid). Then the whole group.
        if self.ns_init is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.ns_init, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(proc.wait(), DRAIN_S)
            if self.ns_init is not None:
                # The init exits only after every other process in its namespace is gone.
                await asyncio.wait_for(_exited(self.ns_init), DRAIN_S)
        except TimeoutError:
            log.error("sandbox processes outlived SIGKILL for %s s", DRAIN_S)


@dataclass(slots=True)
class _Output:
    head: bytearray
    tail: bytes
    total: int
    cap: int

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def text(self) -> str:
        return bytes(self.head).decode("utf-8", errors="replace")

    def last_line(self) -> bytes:
        lines = self.tail.rstrip().splitlines()
        return lines[-1] if lines else b""


async def _collect(stream: asyncio.StreamReader, cap: int, overflow: asyncio.Event) -> _Output:
    """Keep the first ``cap`` bytes (and the last few, for the error line); read to the end."""
    out = _Output(bytearray(), b"", 0, cap)
    while chunk := await stream.read(65536):
        if len(out.head) < cap:
            out.head += chunk[: cap - len(out.head)]
        out.total += len(chunk)
        out.tail = (out.tail + chunk)[-512:]
        if out.total > cap:
            overflow.set()
    return out


async def _feed(pipe: asyncio.StreamWriter, data: bytes) -> None:
    try:
        if data:
            pipe.write(data)
            await pipe.drain()
        pipe.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the code did not read all of its input


async def _read_to_end(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(fd), "rb", buffering=0)
    )
    try:
        return await reader.read(65536)  # bwrap writes one small JSON object, then closes
    finally:
        transport.close()


async def _exited(pidfd: int) -> None:
    """Until the process behind ``pidfd`` has exited (a pidfd polls readable then)."""
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await gone
    finally:
        loop.remove_reader(pidfd)


def _ready(fd: int) -> bool:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 2) == b"ok"
    except BlockingIOError:
        return False


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


# ---- at most N runs at once per process (per event loop) --------------------------------------
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    size = max(1, int(getattr(settings, "CHIMERA_SANDBOX_PARALLEL", 4)))
    known = _gates.get(loop)
    if known is None or known[0] != size:  # a changed setting takes effect for the runs after it
        known = _gates[loop] = (size, asyncio.Semaphore(size))
    return known[1]


# ---- the command ------------------------------------------------------------------------------
# bwrap's own environment (it passes none of it on: --clearenv).
_HOST_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def _bwrap() -> str:
    """bwrap's path: CHIMERA_SANDBOX_BWRAP, a path or a name looked up on the usual directories."""
    name = getattr(settings, "CHIMERA_SANDBOX_BWRAP", "") or "bwrap"
    path = shutil.which(name, path="/usr/bin:/bin:/usr/local/bin")
    if not path:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed, so code cannot run safely here.")
    return path


@dataclass(frozen=True, slots=True)
class _Interpreter:
    """The base interpreter (never the virtualenv's): where it is outside and inside the sandbox."""

    mount: Path | None  # host directory mounted at PYTHON_ROOT (None: it lives in /usr, mounted anyway)
    executable: str  # path inside the sandbox
    hidden: tuple[str, ...]  # sandbox paths covered by an empty tmpfs (site-packages)


@cache
def _interpreter() -> _Interpreter:
    prefix = Path(sys.base_prefix).resolve()
    executable = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    if not executable.is_relative_to(prefix):
        # e.g. a venv made from /usr/bin/python3 whose base_prefix is /usr: still fine below.
        executable = (prefix / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}").resolve()
    site_dirs = {
        *site.getsitepackages([str(prefix)]),
        sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})["purelib"],
        sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})["platlib"],
    }
    mount = None if prefix.is_relative_to("/usr") else prefix

    def inside(path: Path | str) -> str:
        return str(path) if mount is None else f"{PYTHON_ROOT}/{Path(path).relative_to(mount)}"

    hidden = sorted(
        inside(d) for d in site_dirs if Path(d).is_dir() and Path(d).resolve().is_relative_to(prefix)
    )
    return _Interpreter(mount=mount, executable=inside(executable), hidden=tuple(hidden))


def _private_paths() -> list[Path]:
    """What of the server must never be visible: the checkout (settings, var/: the secret key and
    the SQLite file), the virtualenv, and the secret key / database files wherever they are."""
    paths = [Path(settings.BASE_DIR)]
    if sys.prefix != sys.base_prefix:
        paths.append(Path(sys.prefix))
    for name in ("SECRET_KEY_FILE", "SQLITE_PATH"):
        if os.environ.get(name):
            paths.append(Path(os.environ[name]).parent)
    base = Path(sys.base_prefix).resolve()
    # Never the interpreter's own directories (a checkout that holds its Python is refused below).
    return [p.resolve() for p in paths if not base.is_relative_to(p.resolve())]


def _command(bwrap: str, limits: Limits, *, info_fd: int, ready_fd: int, code_fd: int) -> list[str]:
    python = _interpreter()
    as_root = os.geteuid() == 0
    argv = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc"]
    argv += ["--unshare-uts", "--hostname", "sandbox", "--unshare-cgroup-try"]
    if as_root:
        # Privileged bwrap, no user namespace here (bwrap would map the code to root, which the
        # process limit does not bind); the launcher keeps only what it needs to change to the
        # run's uid, drops it, and the inner bwrap (mounted at /opt/bwrap) adds the user namespace.
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user", "--disable-userns", "--uid", "65534", "--gid", "65534"]
    # The filesystem: an empty root with /usr and the interpreter, read-only.
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):  # merged /usr: recreate the symlink
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    argv += ["--perms", "0755", "--dir", "/opt"]
    if as_root:
        argv += ["--ro-bind", bwrap, "/opt/bwrap"]
    if python.mount is not None:
        argv += ["--ro-bind", str(python.mount), PYTHON_ROOT]
    for hidden in python.hidden:
        argv += ["--tmpfs", hidden]
    for private in _private_paths():
        if not private.is_dir():
            continue
        if private.is_relative_to("/usr"):  # e.g. a checkout under /usr/src: cover it
            argv += ["--tmpfs", str(private)]
        elif python.mount is not None and private.is_relative_to(python.mount):
            argv += ["--tmpfs", f"{PYTHON_ROOT}/{private.relative_to(python.mount)}"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    disk = limits.disk_mb * 1024 * 1024
    argv += ["--size", str(disk), "--perms", "1777", "--tmpfs", WORKDIR, "--symlink", WORKDIR, "/tmp"]
    argv += ["--perms", "0644", "--file", str(code_fd), f"{WORKDIR}/main.py", "--chdir", WORKDIR]
    argv += ["--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", WORKDIR]
    argv += ["--setenv", "TMPDIR", WORKDIR, "--setenv", "LANG", "C.UTF-8"]
    if python.mount is not None:
        # The interpreter may find libpython by an absolute RUNPATH of its host prefix.
        argv += ["--setenv", "LD_LIBRARY_PATH", f"{PYTHON_ROOT}/lib"]
    argv += ["--info-fd", str(info_fd), "--"]
    run_uid = RUN_UID_BASE + secrets.randbelow(RUN_UID_SPAN) if as_root else -1
    argv += [python.executable, "-I", "-S", "-B", "-c", LAUNCHER]
    argv += [str(limits.cpu_s), str(limits.memory_mb * 1024 * 1024), str(limits.max_procs)]
    argv += [str(disk), str(OPEN_FILES), str(run_uid), str(ready_fd)]
    return argv
