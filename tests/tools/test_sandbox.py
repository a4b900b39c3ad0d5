"""The executeCode sandbox: each test runs real code in bubblewrap and checks what it could not do.

Limits are set low (settings) so a run that must be stopped is stopped within a couple of seconds.
Claims about processes are checked from outside, in the host's /proc: a marker in the command line
of the code's processes is seen while the run lasts and is gone when ``run_python`` returns.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sqlite3
import sys
import uuid
from pathlib import Path

import pytest

from chat.schemas import ComponentPart
from tools import registry
from tools.base import ToolContext
from tools.sandbox import Execution, Limits, SandboxUnavailable, run_python

WALL_S = 2
CPU_S = 1
MAX_PROCS = 16
OUTPUT_BYTES = 4096
DISK_MB = 4


@pytest.fixture(autouse=True)
def low_limits(settings):
    settings.CHIMERA_SANDBOX_CPU_S = CPU_S
    settings.CHIMERA_SANDBOX_WALL_S = WALL_S
    settings.CHIMERA_SANDBOX_MEMORY_MB = 128
    settings.CHIMERA_SANDBOX_MAX_PROCS = MAX_PROCS
    settings.CHIMERA_SANDBOX_OUTPUT_BYTES = OUTPUT_BYTES
    settings.CHIMERA_SANDBOX_DISK_MB = DISK_MB
    settings.CHIMERA_SANDBOX_PARALLEL = 4


def processes_with(marker: str) -> set[int]:
    """Host pids whose command line holds ``marker`` (the sandbox's processes are visible here)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                pass
    return found


async def run_while_watching(code: str, marker: str) -> tuple[Execution, int]:
    """Run ``code`` and return the run and the most processes with ``marker`` seen at once,
    waiting until at least one was seen (or the run ended)."""
    run = asyncio.create_task(run_python(code))
    most = 0
    while not run.done():
        most = max(most, len(processes_with(marker)))
        await asyncio.sleep(0.02)
    return await run, most


def spawn_marked(marker: str, body: str, *, new_session: bool = False) -> str:
    """Python (for the sandbox) that starts a child interpreter running ``body`` with ``marker`` in
    its command line."""
    return (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-I', '-S', '-c', {body!r}, {marker!r}], "
        f"start_new_session={new_session})\n"
    )


# ---- the network --------------------------------------------------------------------------------
@pytest.fixture
def listening_server():
    """A TCP server on the host's 127.0.0.1 that the host itself can reach."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    port = server.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the control: from the host it answers
    server.accept()[0].close()
    yield server, port
    server.close()


async def test_the_code_cannot_reach_a_server_on_the_hosts_loopback(listening_server):
    server, port = listening_server
    code = (
        "import socket\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n    print('connected')\n"
        "except OSError as e:\n    print(type(e).__name__)\n"
    )
    run = await run_python(code)
    assert run.stdout == "ConnectionRefusedError\n", run
    with pytest.raises(BlockingIOError):
        server.accept()  # nothing arrived


async def test_the_code_has_no_dns_no_route_out_and_no_services():
    code = """\
import json, socket
results = {}
def attempt(name, connect):
    try:
        connect()
        results[name] = "connected"
    except OSError as e:
        results[name] = type(e).__name__
def tcp(host, port):
    socket.create_connection((host, port), timeout=5).close()
def udp(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", (host, port))
def unix(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
attempt("dns", lambda: socket.getaddrinfo("example.com", 443))
attempt("dns-localhost", lambda: tcp("localhost", 5432))
attempt("outbound-tcp", lambda: tcp("1.1.1.1", 443))
attempt("outbound-udp", lambda: udp("8.8.8.8", 53))
attempt("outbound-ipv6", lambda: tcp("2606:4700:4700::1111", 443))
attempt("postgres-tcp", lambda: tcp("127.0.0.1", 5432))
attempt("redis-tcp", lambda: tcp("127.0.0.1", 6379))
attempt("postgres-socket", lambda: unix("/var/run/postgresql/.s.PGSQL.5432"))
results["interfaces"] = [name for _, name in socket.if_nameindex()]
print(json.dumps(results))
"""
    run = await run_python(code)
    assert run.exit_code == 0, run
    results = json.loads(run.stdout)
    assert results.pop("interfaces") == ["lo"]
    assert "connected" not in results.values(), results
    assert results["dns"] == "gaierror"
    assert results["outbound-tcp"] == "OSError"  # ENETUNREACH: no route at all
    assert results["postgres-tcp"] == results["redis-tcp"] == "ConnectionRefusedError"
    assert results["postgres-socket"] == "FileNotFoundError"


# ---- nothing of the server --------------------------------------------------------------------
@pytest.fixture
def server_files(settings):
    """The server's secrets as files that exist on the host: var/secret-key (made for the test when
    this checkout has none) and a SQLite database in var/, both 0600 like the real ones."""
    var = Path(settings.BASE_DIR) / "var"
    var.mkdir(exist_ok=True)
    key = var / "secret-key"
    made_key = not key.exists()
    if made_key:
        key.write_text(secrets.token_urlsafe(50))
        key.chmod(0o600)
    database = var / f"sandbox-probe-{uuid.uuid4().hex}.sqlite3"
    db_secret = f"db-secret-{uuid.uuid4().hex}"
    with sqlite3.connect(database) as db:
        db.execute("create table t (v text)")
        db.execute("insert into t values (?)", (db_secret,))
    database.chmod(0o600)
    yield {"key": key, "database": database, "db_secret": db_secret}
    database.unlink()
    if made_key:
        key.unlink()


async def test_the_code_cannot_read_the_secret_key_database_settings_or_repository(server_files, settings):
    root = Path(settings.BASE_DIR)
    targets = {
        "secret-key": server_files["key"],
        "database": server_files["database"],
        "settings": root / "chimera" / "settings.py",
        "test-settings": root / "tests" / "settings.py",
        "repository": root,
        "var": root / "var",
        "virtualenv": Path(sys.prefix),
        "server-environ": Path(f"/proc/{os.getpid()}/environ"),
        "etc-passwd": Path("/etc/passwd"),
    }
    for path in targets.values():
        assert path.exists()  # on the host they are there
    code = (
        "import json, os\n"
        f"targets = {json.dumps({k: str(v) for k, v in targets.items()})}\n"
        "results = {}\n"
        "for name, path in targets.items():\n"
        "    try:\n"
        "        results[name] = os.listdir(path) if os.path.isdir(path) else open(path, 'rb').read().decode('latin-1')\n"
        "    except OSError as e:\n"
        "        results[name] = type(e).__name__\n"
        "print(json.dumps({'results': results, 'root': sorted(os.listdir('/'))}))\n"
    )
    run = await run_python(code)
    assert run.exit_code == 0, run
    seen = json.loads(run.stdout)
    assert seen["results"] == dict.fromkeys(targets, "FileNotFoundError")
    assert set(seen["root"]) <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "opt"} | {
        "proc",
        "dev",
        "sandbox",
        "tmp",
    }
    for secret in (server_files["key"].read_text(), server_files["db_secret"], settings.SECRET_KEY):
        assert secret not in run.stdout + run.stderr


async def test_the_code_sees_none_of_the_servers_environment(monkeypatch, settings):
    marker = f"marker-{uuid.uuid4().hex}"
    monkeypatch.setenv("CHIMERA_SANDBOX_TEST_SECRET", marker)
    assert os.environ["SECRET_KEY"] == settings.SECRET_KEY  # the test settings put it there
    code = """\
import json, os
environs = {}
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            environs[pid] = open(f"/proc/{pid}/environ", "rb").read().decode("latin-1")
        except OSError as e:
            environs[pid] = type(e).__name__
print(json.dumps({"environ": dict(os.environ), "proc": environs}))
"""
    run = await run_python(code)
    assert run.exit_code == 0, run
    seen = json.loads(run.stdout)
    assert set(seen["environ"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "LD_LIBRARY_PATH", "PWD", "LC_CTYPE"}
    assert marker not in run.stdout
    assert settings.SECRET_KEY not in run.stdout
    assert len(seen["proc"]) <= 3  # the namespace's init and this script: no server process


async def test_the_code_runs_unprivileged_on_a_read_only_system_with_nothing_of_ours_importable():
    code = """\
import ctypes, errno, json, os, site, sys
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
       "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(),
       "no_new_privs": status["NoNewPrivs"].strip(), "path": sys.path}
for name in ("django", "chimera", "tools", "pydantic"):
    try:
        __import__(name)
        out[name] = "imported"
    except ImportError as e:
        out[name] = type(e).__name__
out["site_packages"] = {p: os.listdir(p) for p in site.getsitepackages() if os.path.isdir(p)}
out["fds"] = sorted(fd for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}"))
try:
    os.setuid(0)
    out["setuid"] = "done"
except OSError as e:
    out["setuid"] = errno.errorcode[e.errno]
libc = ctypes.CDLL(None, use_errno=True)
out["new_user_namespace"] = libc.unshare(0x10000000) == 0  # CLONE_NEWUSER
out["read_only"] = [bool(os.statvfs(p).f_flag & os.ST_RDONLY) for p in ("/usr", os.path.dirname(os.__file__))]
print(json.dumps(out))
"""
    run = await run_python(code)
    assert run.exit_code == 0, run
    seen = json.loads(run.stdout)
    assert seen["uid"] != 0 and seen["gid"] != 0 and seen["groups"] in ([], [seen["gid"]])
    assert int(seen["cap_eff"], 16) == 0 and int(seen["cap_prm"], 16) == 0
    assert seen["no_new_privs"] == "1"
    assert not any("site-packages" in p or "dist-packages" in p for p in seen["path"])
    assert seen["django"] == seen["chimera"] == seen["tools"] == seen["pydantic"] == "ModuleNotFoundError"
    assert all(listing == [] for listing in seen["site_packages"].values())
    assert seen["setuid"] in ("EPERM", "EINVAL")  # EINVAL: root is not even mapped in its namespace
    assert seen["new_user_namespace"] is False  # no way to capabilities of its own
    assert seen["fds"] == ["0", "1", "2"]  # nothing of bwrap's or the server's is inherited
    assert seen["read_only"] == [True, True]  # /usr and the interpreter are mounted read-only


# ---- time ---------------------------------------------------------------------------------------
async def test_a_sleeping_loop_is_killed_at_the_wall_limit_with_everything_it_started(tmp_path):
    marker = f"sandbox-escapee-{uuid.uuid4().hex}"
    # A child in a session of its own has left the process group: the namespace still takes it.
    code = (
        spawn_marked(marker, "import time\nwhile True: time.sleep(1)", new_session=True)
        + "import time\nprint('started', flush=True)\nwhile True: time.sleep(0.05)\n"
    )
    run, most = await run_while_watching(code, marker)
    assert most == 1  # the escapee ran
    assert processes_with(marker) == set()  # and is gone now that the run is over
    assert run.limit == "timeout" and run.timed_out
    assert run.exit_code is None and run.signal_name == "SIGKILL"
    assert run.stdout == "started\n"  # output before the kill is kept
    assert run.duration_ms >= WALL_S * 1000


async def test_a_busy_loop_is_stopped_by_the_cpu_limit(settings):
    settings.CHIMERA_SANDBOX_WALL_S = 30  # so that only CPU time can stop it, however busy the machine
    run = await run_python("while True: pass")
    assert run.limit == "timeout"
    assert run.signal_name == "SIGXCPU"
    assert run.exit_code is None


async def test_background_processes_die_when_the_code_ends():
    marker = f"sandbox-daemon-{uuid.uuid4().hex}"
    # The daemon says it is up (a file); the script waits for that, then ends, leaving it running.
    daemon = "import time\nopen('up', 'w').close()\nwhile True: time.sleep(1)"
    code = spawn_marked(marker, daemon, new_session=True)
    code += "import os, time\nwhile not os.path.exists('up'): time.sleep(0.01)\nprint('daemon up')\n"
    run, most = await run_while_watching(code, marker)
    assert run.exit_code == 0 and run.stdout == "daemon up\n"
    assert most <= 1
    assert processes_with(marker) == set()


async def test_cancelling_a_run_kills_it():
    """The tool's own time limit cancels run_python: the code must not live on."""
    marker = f"sandbox-cancelled-{uuid.uuid4().hex}"
    code = spawn_marked(marker, "import time\nwhile True: time.sleep(1)")
    code += "import time\nwhile True: time.sleep(0.05)\n"
    run = asyncio.create_task(run_python(code))
    while not processes_with(marker):
        assert not run.done(), run
        await asyncio.sleep(0.02)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert processes_with(marker) == set()


# ---- processes ----------------------------------------------------------------------------------
async def test_forking_stops_at_the_process_limit():
    code = """\
import os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
except BlockingIOError as e:
    print(children, e.errno)
"""
    run = await run_python(code)
    children, errno = run.stdout.split()
    assert 0 < int(children) < MAX_PROCS
    assert errno == "11"  # EAGAIN


async def test_a_fork_bomb_is_contained_and_dies_with_the_run():
    marker = f"sandbox-bomb-{uuid.uuid4().hex}"
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    code = f"import os, sys\nos.execv(sys.executable, [sys.executable, '-I', '-S', '-c', {bomb!r}, {marker!r}])\n"
    run, most = await run_while_watching(code, marker)
    assert 1 < most <= MAX_PROCS
    assert processes_with(marker) == set()
    assert run.limit == "timeout"


# ---- memory, output, disk -----------------------------------------------------------------------
async def test_allocating_two_gigabytes_fails_and_is_reported():
    run = await run_python("data = bytearray(2 * 1024 ** 3)\nprint('allocated')")
    assert run.limit == "memory"
    assert run.stdout == ""
    assert run.stderr.rstrip().endswith("MemoryError")


async def test_growing_memory_step_by_step_hits_the_limit():
    run = await run_python("chunks = []\nwhile True:\n    chunks.append(bytearray(1024 * 1024))")
    assert run.limit == "memory"


async def test_output_over_the_cap_is_truncated_and_flagged():
    run = await run_python(f"print('x' * {OUTPUT_BYTES * 20})")
    assert run.limit == "output"
    assert run.stdout_truncated and run.truncated and not run.stderr_truncated
    assert run.stdout == "x" * OUTPUT_BYTES


async def test_endless_output_is_stopped():
    run = await run_python("import sys\nwhile True:\n    sys.stderr.write('e' * 100)")
    assert run.limit == "output"
    assert run.stderr_truncated and len(run.stderr) == OUTPUT_BYTES


async def test_output_up_to_the_cap_is_kept_whole():
    run = await run_python(f"print('x' * {OUTPUT_BYTES - 1})")
    assert run.limit is None and not run.truncated and run.exit_code == 0
    assert len(run.stdout) == OUTPUT_BYTES


async def test_each_run_gets_a_fresh_working_directory_that_is_gone_afterwards():
    name = f"left-{uuid.uuid4().hex}.txt"
    first = await run_python(
        f"import os\nopen({name!r}, 'w').write('x' * 1000)\nopen('/tmp/also-' + {name!r}, 'w').write('y')\n"
        "print(os.getcwd(), sorted(os.listdir('.')))"
    )
    assert first.stdout == f"/sandbox {sorted(['also-' + name, 'main.py', name])}\n", first
    second = await run_python(
        "import os\nprint(sorted(os.listdir('.')), os.listdir('/tmp') == os.listdir('.'))"
    )
    assert second.stdout == "['main.py'] True\n"


async def test_the_working_directory_is_size_capped():
    code = f"""\
try:
    with open('big', 'wb') as f:
        for _ in range({DISK_MB * 2}):
            f.write(b'x' * 1024 * 1024)
    print('wrote it all')
except OSError as e:
    print(type(e).__name__, e.errno)
"""
    run = await run_python(code)
    assert run.stdout.startswith("OSError"), run  # ENOSPC (tmpfs full) or EFBIG (file size limit)


# ---- ordinary code ------------------------------------------------------------------------------
async def test_normal_code_prints_computes_and_reads_stdin():
    code = """\
import math, sys, statistics
print(math.factorial(20), statistics.mean([1, 2, 3, 4]))
for line in sys.stdin:
    print(line.strip().upper())
print("héllo ✓ 世界")
"""
    run = await run_python(code, stdin="alpha\nbeta\n")
    assert run.stdout == "2432902008176640000 2.5\nALPHA\nBETA\nhéllo ✓ 世界\n"
    assert (run.stderr, run.exit_code, run.signal, run.limit, run.truncated) == ("", 0, None, None, False)


async def test_exit_status_and_tracebacks_come_back():
    assert (await run_python("import sys\nsys.exit(3)")).exit_code == 3
    failed = await run_python("def f():\n    return 1 / 0\nf()")
    assert failed.exit_code == 1 and failed.limit is None
    assert 'File "/sandbox/main.py", line 2, in f' in failed.stderr
    assert failed.stderr.endswith("ZeroDivisionError: division by zero\n")
    syntax = await run_python("print(")
    assert syntax.exit_code == 1 and "SyntaxError" in syntax.stderr


async def test_at_most_the_parallel_limit_runs_at_once_and_the_rest_wait_their_turn(settings):
    settings.CHIMERA_SANDBOX_PARALLEL = 2
    marker = f"sandbox-parallel-{uuid.uuid4().hex}"
    body = "import sys, time\ntime.sleep(0.3)\nprint(int(sys.argv[1]) ** 2)"
    runs = asyncio.gather(
        *(
            run_python(
                "import os, sys\n"
                f"os.execv(sys.executable, [sys.executable, '-I', '-S', '-c', {body!r}, '{n}', {marker!r}])"
            )
            for n in range(5)
        )
    )
    most = 0
    while not runs.done():
        most = max(most, len(processes_with(marker)))
        await asyncio.sleep(0.02)
    assert [r.stdout for r in await runs] == [f"{n * n}\n" for n in range(5)]
    assert 1 <= most <= 2


async def test_without_bubblewrap_nothing_runs(settings):
    settings.CHIMERA_SANDBOX_BWRAP = "/nonexistent/bwrap"
    with pytest.raises(SandboxUnavailable, match="not installed"):
        await run_python("print(1)")


async def test_a_sandbox_that_fails_to_start_is_not_blamed_on_the_code(settings):
    settings.CHIMERA_SANDBOX_BWRAP = "false"  # exits 1 at once, like a bwrap that cannot mount
    with pytest.raises(SandboxUnavailable, match="failed to start"):
        await run_python("print(1)")


def test_limits_come_from_settings(settings):
    settings.CHIMERA_SANDBOX_MEMORY_MB = 64
    assert Limits.from_settings() == Limits(CPU_S, WALL_S, 64, MAX_PROCS, OUTPUT_BYTES, DISK_MB)


# ---- the executeCode tool -----------------------------------------------------------------------
CTX = ToolContext(user_id=1, user_tier="free")


async def test_the_tool_refuses_other_languages_saying_only_python_runs():
    outcome = await registry.invoke("executeCode", {"language": "javascript", "code": "1"}, CTX)
    assert not outcome.ok
    assert outcome.error == (
        "Invalid arguments for executeCode: language: only Python code runs here, not 'javascript'."
    )


async def test_the_tool_refuses_nul_bytes_surrogates_and_oversized_code():
    nul = await registry.invoke("executeCode", {"language": "python", "code": "print(1)\x00"}, CTX)
    assert nul.error == "Invalid arguments for executeCode: code: the code contains a NUL character."
    surrogate = await registry.invoke("executeCode", {"language": "python", "code": "'\ud800'"}, CTX)
    assert surrogate.error == (
        "Invalid arguments for executeCode: code: "
        "Input should be a valid string, unable to parse raw data as a unicode string."
    )
    huge = await registry.invoke("executeCode", {"language": "python", "code": "#" * 50_001}, CTX)
    assert "at most 50000 characters" in huge.error
    empty = await registry.invoke("executeCode", {"language": "python", "code": ""}, CTX)
    assert not empty.ok


async def test_the_tool_runs_python_and_returns_a_code_result_component():
    outcome = await registry.invoke("executeCode", {"language": "Python", "code": "print(6 * 7)"}, CTX)
    assert outcome.ok, outcome.error
    assert outcome.result is not None
    output = outcome.result.output
    assert output["stdout"] == "42\n" and output["stderr"] == "" and output["exitCode"] == 0
    assert output["timedOut"] is False and output["truncated"] is False
    assert output["limit"] is None and output["signal"] is None
    assert output["durationMs"] >= 0 and output["message"] == "The code ran to completion."
    (part,) = outcome.result.parts
    assert isinstance(part, ComponentPart) and part.component == "code-result"
    assert part.props == {"language": "python", **output}
    json.dumps(part.model_dump())  # storable as it is


async def test_a_timeout_in_the_tool_is_a_result_with_a_clear_message():
    code = "import time\nprint('working', flush=True)\nwhile True: time.sleep(0.05)"
    outcome = await registry.invoke("executeCode", {"language": "python", "code": code}, CTX)
    assert outcome.ok and outcome.result is not None
    output = outcome.result.output
    assert output["timedOut"] is True and output["limit"] == "timeout"
    assert output["stdout"] == "working\n"
    assert output["message"] == f"Stopped: the code ran longer than the {WALL_S}-second time limit."


async def test_the_tool_reports_errors_and_limits_in_words():
    crash = await registry.invoke("executeCode", {"language": "python", "code": "raise SystemExit(4)"}, CTX)
    assert crash.result is not None and crash.result.output["message"] == "The code exited with status 4."
    memory = await registry.invoke("executeCode", {"language": "python", "code": "b = bytearray(2**31)"}, CTX)
    assert memory.result is not None
    assert memory.result.output["message"] == "The code ran out of memory (the limit is 128 MB)."
    noisy = await registry.invoke("executeCode", {"language": "python", "code": "print('z' * 10**6)"}, CTX)
    assert noisy.result is not None and noisy.result.output["truncated"] is True
    assert noisy.result.output["message"] == (
        "Stopped: the code printed more than 4 KB; only the beginning of its output is shown."
    )


async def test_nul_bytes_in_the_output_are_made_storable():
    outcome = await registry.invoke("executeCode", {"language": "python", "code": "print('a\\0b')"}, CTX)
    assert outcome.result is not None and outcome.result.output["stdout"] == "a\ufffdb\n"


async def test_without_bubblewrap_the_tool_says_code_cannot_run(settings):
    settings.CHIMERA_SANDBOX_BWRAP = "/nonexistent/bwrap"
    outcome = await registry.invoke("executeCode", {"language": "python", "code": "print(1)"}, CTX)
    assert outcome.error == (
        "Code cannot run on this server right now: "
        "bubblewrap (bwrap) is not installed, so code cannot run safely here."
    )


def test_the_tool_is_offered_to_free_and_pro_with_a_python_only_schema():
    assert registry.allowed("executeCode", "free") and registry.allowed("executeCode", "pro")
    (definition,) = registry.definitions(["executeCode"], "free")
    schema = definition["parameters"]
    assert schema["properties"]["language"]["enum"] == ["python"]
    assert schema["properties"]["code"]["maxLength"] == 50_000
    assert schema["required"] == ["language", "code"]
    assert registry.tool_class("executeCode").timeout_s > WALL_S
