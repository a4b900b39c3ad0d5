"""The adapters' deadline: one timer per deadline, bounding only the SDK's awaits.

No test waits a fixed time: each waits for the event it is about (a deadline passing, read from the
loop's own clock), so a slow machine only makes them slower.
"""

from __future__ import annotations

import asyncio

import pytest

from providers.adapters._common import Deadline
from providers.base import ProviderConfig, ProviderError

# A first-token deadline that passes at once, a total one no test reaches.
FIRST = ProviderConfig(name="groq", wire="openai", timeout_s=600, first_token_timeout_s=0.01)
# Both deadlines at once: with content, the message names the total one.
TOTAL = ProviderConfig(name="groq", wire="openai", timeout_s=0.01, first_token_timeout_s=0.01)


def done(value: object) -> asyncio.Future:
    """An SDK await that has its answer already."""
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def passed(when: float) -> asyncio.Future:
    """Resolves once the loop's clock has reached ``when`` (a deadline), and not before."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_at(when, lambda: future.done() or future.set_result(None))
    return future


async def test_an_await_past_the_first_token_deadline_is_a_timeout_error():
    deadline = Deadline(FIRST)
    assert await deadline.run(done("quick")) == "quick"
    with pytest.raises(ProviderError, match=r"first token timeout after 0\.01s"):
        await deadline.run(asyncio.Event().wait())  # never set: only the deadline ends it
    deadline.close()


async def test_with_content_the_total_deadline_applies():
    deadline = Deadline(FIRST)
    deadline.has_content = True
    await deadline.run(passed(deadline.first_at))  # outlives the first-token deadline: fine now
    deadline.close()

    deadline = Deadline(TOTAL)
    deadline.has_content = True
    with pytest.raises(ProviderError, match=r"^timeout after 0\.01s"):
        await deadline.run(asyncio.Event().wait())


async def test_the_consumers_time_between_awaits_is_never_cancelled():
    deadline = Deadline(FIRST)
    await deadline.run(done(None))
    # The consumer's own work outlives the deadline (it awaits past it, outside the adapter's awaits):
    # it is not cancelled.
    await passed(deadline.first_at)

    async def sdk_read() -> str:
        return "never read"

    read = sdk_read()
    with pytest.raises(ProviderError, match="first token timeout"):
        await deadline.run(read)  # the next await on the SDK finds the deadline passed
    assert read.cr_frame is None  # closed, not left un-awaited


async def test_somebody_elses_cancellation_stays_a_cancellation():
    deadline = Deadline(ProviderConfig(name="groq", wire="openai"))
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
