"""The rules around the tool loop, through whole turns: a tool's error goes back to the model, the
step limit, failover in the middle of a tool step, tools only when asked and only those the plan
includes, and embedded mode (the local model cannot call tools) saying so."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from tests.api.helpers import chat, metadata_of, text_of, types
from tests.chat.helpers import connect, frames_until, send, status_of
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)

CODE = {"language": "python", "code": "print(6 * 7)"}


def ask(tool: str, args: dict, tools: list[str] | None = None) -> dict:
    return {
        "messages": [{"role": "user", "content": f"Please [[tool:{tool} {json.dumps(args)}]]"}],
        "config": {"tools": tools if tools is not None else [tool]},
    }


def test_a_tools_error_streams_as_tool_output_error_and_the_model_answers_anyway(
    live_server, emu, http, alice, alice_key
):
    response, parts = chat(
        http, live_server.url, ask("executeCode", {"language": "ruby", "code": "puts 1"}), alice_key
    )
    kinds = types(parts)
    assert kinds.index("tool-input-available") < kinds.index("tool-output-error") < kinds.index("finish")
    [error] = [p for p in parts if isinstance(p, dict) and p["type"] == "tool-output-error"]
    assert "python" in error["errorText"].lower()  # names what is allowed
    assert metadata_of(parts)["status"] == "complete" and "Tool results:" in text_of(parts)
    answer = Message.objects.get(pk=parts[0]["messageId"])
    [call] = answer.tool_invocations
    assert call["status"] == "error" and call["error"] == error["errorText"]


def test_failover_inside_a_tool_step_restarts_it_on_the_next_provider_and_says_so(
    live_server, emu, http, alice, alice_key
):
    # Groq's streams break off inside the tool call (its name and the first arguments already
    # shown), every time: Google does the step again from the start.
    emu.fault(provider="groq", kind="cut", after_tokens=2, times=10)
    response, parts = chat(http, live_server.url, ask("executeCode", CODE), alice_key)

    switches = [p["data"] for p in parts if isinstance(p, dict) and p["type"] == "data-provider-switch"]
    assert any(s["mode"] == "restart" and s["toProvider"] == "google" for s in switches), switches
    answer = Message.objects.get(pk=parts[0]["messageId"])
    # (Groq breaks off the final step too; Google continues that text: the emulator's continuation
    # does not quote the result again.)
    assert answer.status == "complete" and answer.content.startswith("Tool results:")
    [call] = answer.tool_invocations  # the broken call was dropped; the restarted step's call ran once
    assert call["status"] == "success" and call["result"]["stdout"] == "42\n"
    attempts = [r for r in emu.requests() if r["body"] is not None]
    assert UsageMetric.objects.filter(message_id=answer.id).count() == len(attempts)  # every attempt billed


def test_tools_are_offered_only_when_asked(live_server, emu, http, alice, alice_key):
    body = {"messages": [{"role": "user", "content": "Run [[tool:executeCode {}]]"}]}
    chat(http, live_server.url, body, alice_key)
    assert "tools" not in emu.requests()[-1]["body"]  # no tool definitions sent at all
    assert not Message.objects.filter(role="assistant").get().tool_invocations


def test_a_tool_the_plan_does_not_include_is_refused_with_a_403(live_server, emu, http, alice, alice_key):
    video = {"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "question": "What happens?"}
    response, _ = chat(http, live_server.url, ask("analyzeVideo", video), alice_key)  # alice: free
    assert response.status_code == 403
    error = response.json()["error"]
    assert (
        error["code"] == "tool_not_allowed"
        and "analyzeVideo" in error["message"]
        and error["field"] == "config.tools"
    )
    assert emu.requests() == [] and not Message.objects.exists()


async def test_the_pages_tools_toggle_offers_what_the_plan_includes(alice, emu):
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Hello", tools="on")
    await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
    offered = json.dumps(emu.requests()[-1]["body"])
    assert "executeCode" in offered and "searchKnowledge" in offered
    assert "analyzeVideo" not in offered  # pro only


async def test_the_step_limit_ends_the_loop_with_an_answer(alice, emu, settings):
    settings.CHIMERA_TOOL_MAX_STEPS = 2
    three = " ".join(
        f"[[tool:executeCode {json.dumps({'language': 'python', 'code': f'print({n})'})}]]" for n in (1, 2, 3)
    )
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message=f"Run these: {three}", tools=["executeCode"])
    frames = await frames_until(communicator, 'data-testid="message-complete"', timeout=60)
    await communicator.disconnect()

    answer = await Message.objects.aget(pk=status_of(frames)["message-id"])
    assert answer.status == "complete" and answer.content
    assert [c["args"]["code"] for c in answer.tool_invocations] == ["print(1)"]  # step 2 may not call
    generation = [r for r in emu.requests() if r["body"] is not None]
    assert len(generation) == 2 and "tools" not in generation[-1]["body"]  # the last step offers none
    assert await UsageMetric.objects.filter(message_id=answer.id).acount() == 2


async def test_in_embedded_mode_the_page_says_the_local_model_cannot_call_tools(alice, client, settings):
    settings.CHIMERA_EMULATOR_URL = ""  # no provider key, no emulator: the local model answers
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Run some code", tools="on")
    frames = await frames_until(communicator, 'data-testid="input-error"')
    await communicator.disconnect()
    assert "cannot call tools" in frames[-1]
    assert await Message.objects.acount() == 0

    await sync_to_async(client.force_login)(alice)
    page = (await sync_to_async(client.get)("/")).content.decode()
    toggle = page.split('data-testid="tools-toggle"', 1)[1].split(">", 1)[0]
    assert "disabled" in toggle and "cannot call tools" in page
