"""The adapters' deadline: one timer per deadline, bounding only the SDK's awaits."""

from __future__ import annotations

import asyncio

import pytest

from providers.adapters._common import Deadline
from providers.base import ProviderConfig, ProviderError

CONFIG = ProviderConfig(name="groq", wire="openai", timeout_s=0.5, first_token_timeout_s=0.1)


async def test_an_await_past_the_first_token_deadline_is_a_timeout_error():
    deadline = Deadline(CONFIG)
    assert await deadline.run(asyncio.sleep(0, result="quick")) == "quick"
    with pytest.raises(ProviderError, match=r"first token timeout after 0\.1s"):
        await deadline.run(asyncio.Event().wait())  # never set: only the deadline ends it
    deadline.close()


async def test_with_content_the_total_deadline_applies():
    deadline = Deadline(CONFIG)
    deadline.has_content = True
    await deadline.run(asyncio.sleep(0.15))  # past the first-token deadline: fine now
    with pytest.raises(ProviderError, match=r"timeout after 0\.5s"):
        await deadline.run(asyncio.Event().wait())


async def test_the_consumers_time_between_awaits_is_never_cancelled():
    deadline = Deadline(CONFIG)
    await deadline.run(asyncio.sleep(0))
    await asyncio.sleep(0.2)  # the consumer's own work outlives the deadline: not cancelled
    coroutine = asyncio.sleep(0)
    with pytest.raises(ProviderError, match="first token timeout"):
        await deadline.run(coroutine)  # the next await on the SDK finds it passed
    assert coroutine.cr_frame is None  # closed, not left un-awaited


async def test_somebody_elses_cancellation_stays_a_cancellation():
    deadline = Deadline(CONFIG)
    started = asyncio.Event()

    async def waiting():
        started.set()
        await deadline.run(asyncio.Event().wait())

    task = asyncio.create_task(waiting())
    await started.wait()
    task.cancel()  # Stop, a closed socket: not a provider timeout
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline.close()
    assert deadline._handle is None
