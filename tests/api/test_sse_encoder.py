"""The UI message stream encoder on its own: turn events in, protocol parts out."""

from __future__ import annotations

import json

from chat.events import StepFinished, TurnFinished
from chat.schemas import ErrorPart, ProviderSwitchPart, ToolCallPart
from chat.sse import UIMessageStreamEncoder
from providers.events import ReasoningDelta, TextDelta, ToolInputDelta
from tests.api.helpers import DONE, text_of, types


def decode(data: bytes) -> list:
    parts = []
    for event in data.decode().split("\n\n"):
        if not event:
            continue
        assert event.startswith("data: ") and "\n" not in event
        payload = event[len("data: ") :]
        parts.append(DONE if payload == DONE else json.loads(payload))
    return parts


def finished(status="complete", content="", error="", reason="stop") -> TurnFinished:
    return TurnFinished(
        message_id="m1",
        conversation_id="c1",
        status=status,
        content=content,
        metadata={"modelUsed": "groq/x", "finishReason": reason},
        error=error,
    )


def stored(content: str, status: str, metadata: dict, data_parts: list | None = None) -> TurnFinished:
    """A stored answer as a watch ends with it when the client did not see it live."""
    return TurnFinished(
        message_id="m1",
        conversation_id="c1",
        status=status,
        content=content,
        metadata=metadata,
        data_parts=data_parts or [],
        live=False,
    )


def switch_part(from_provider, to_provider, model, mode, reason="") -> ProviderSwitchPart:
    return ProviderSwitchPart(
        fromProvider=from_provider, toProvider=to_provider, model=model, mode=mode, reason=reason
    )


def test_consecutive_text_deltas_in_one_batch_become_one_part():
    encoder = UIMessageStreamEncoder("m1")
    parts = decode(encoder.encode([TextDelta("Hel"), TextDelta("lo"), TextDelta(" there")]))

    assert parts == [
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "Hello there"},
    ]
    assert decode(encoder.encode([TextDelta("!")])) == [{"type": "text-delta", "id": "text-1", "delta": "!"}]


def test_a_whole_answer_is_framed_by_start_and_finish_then_done():
    encoder = UIMessageStreamEncoder("m1")
    data = encoder.start({"sessionId": "c1"}) + encoder.encode(
        [ReasoningDelta("hmm"), TextDelta("Hi"), finished(content="Hi")]
    )
    parts = decode(data)

    assert types(parts) == [
        "start",
        "start-step",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-end",
        "message-metadata",
        "finish-step",
        "finish",
        DONE,
    ]
    assert parts[0] == {"type": "start", "messageId": "m1", "messageMetadata": {"sessionId": "c1"}}
    assert parts[-4]["messageMetadata"] == {
        "modelUsed": "groq/x",
        "finishReason": "stop",
        "status": "complete",
    }
    assert parts[-2] == {"type": "finish", "finishReason": "stop"}
    assert encoder.finished


def test_a_restart_switch_ends_the_text_part_names_it_and_streams_the_new_answer_into_a_new_part():
    encoder = UIMessageStreamEncoder("m1")
    switch = switch_part("groq", "google", "gemini-x", mode="restart", reason="cut")
    parts = decode(
        encoder.encode(
            [TextDelta("old answer"), switch, TextDelta("new answer"), finished(content="new answer")]
        )
    )

    assert types(parts)[:6] == [
        "text-start",
        "text-delta",
        "text-end",
        "data-provider-switch",
        "text-start",
        "text-delta",
    ]
    assert parts[3]["data"] == {
        "fromProvider": "groq",
        "toProvider": "google",
        "model": "gemini-x",
        "mode": "restart",
        "reason": "cut",
        "discardTextId": "text-1",
    }
    assert parts[4]["id"] == "text-2"
    assert text_of(parts) == "new answer"


def test_a_continue_switch_keeps_the_text_part_open():
    encoder = UIMessageStreamEncoder("m1")
    parts = decode(
        encoder.encode(
            [
                TextDelta("half"),
                switch_part("groq", "google", "g", "continue"),
                TextDelta(" and the rest"),
            ]
        )
    )

    assert types(parts) == ["text-start", "text-delta", "data-provider-switch", "text-delta"]
    assert "discardTextId" not in parts[2]["data"]
    assert text_of(parts) == "half and the rest"


def test_a_failed_answer_ends_with_a_data_error_an_error_part_and_finish_reason_error():
    encoder = UIMessageStreamEncoder("m1")
    error = ErrorPart(error="All providers are unavailable", retryable=True, provider="groq")
    parts = decode(
        encoder.encode(
            [TextDelta("par"), error, finished("incomplete", "par", "All providers are unavailable", None)]
        )
    )

    assert types(parts) == [
        "text-start",
        "text-delta",
        "text-end",
        "data-error",
        "message-metadata",
        "error",
        "finish-step",
        "finish",
        DONE,
    ]
    assert parts[3]["data"] == {
        "error": "All providers are unavailable",
        "retryable": True,
        "provider": "groq",
    }
    assert parts[5] == {"type": "error", "errorText": "All providers are unavailable"}
    assert parts[7]["finishReason"] == "error"


def test_a_stopped_answer_finishes_without_an_error_part():
    encoder = UIMessageStreamEncoder("m1")
    parts = decode(encoder.encode([TextDelta("part"), finished("incomplete", "part", "Stopped.", None)]))

    assert "error" not in types(parts)
    assert parts[-2] == {"type": "finish", "finishReason": "other"}
    assert parts[-4]["messageMetadata"]["status"] == "incomplete"


def test_a_tool_call_is_the_ai_sdk_tool_parts_plus_a_data_tool_call_part_with_the_call_id():
    encoder = UIMessageStreamEncoder("m1")
    parts = decode(
        encoder.encode(
            [
                TextDelta("Let me look."),
                ToolInputDelta("call_1", "searchKnowledge", '{"query": '),
                ToolInputDelta("call_1", "searchKnowledge", '"comets"}'),
                ToolCallPart(toolCallId="call_1", toolName="searchKnowledge", args={"query": "comets"}),
            ]
        )
    )

    assert types(parts) == [
        "text-start",
        "text-delta",
        "text-end",
        "tool-input-start",
        "tool-input-delta",
        "tool-input-delta",
        "tool-input-available",
        "data-tool-call",
    ]
    assert parts[3] == {"type": "tool-input-start", "toolCallId": "call_1", "toolName": "searchKnowledge"}
    assert parts[6] == {
        "type": "tool-input-available",
        "toolCallId": "call_1",
        "toolName": "searchKnowledge",
        "input": {"query": "comets"},
    }
    assert parts[-1] == {
        "type": "data-tool-call",
        "id": "call_1",
        "data": {
            "toolCallId": "call_1",
            "toolName": "searchKnowledge",
            "args": {"query": "comets"},
            "status": "pending",
        },
    }


def test_a_tool_result_and_a_tool_error_are_output_parts_and_a_step_ends_with_finish_step():
    encoder = UIMessageStreamEncoder("m1")
    call = {"toolCallId": "c1", "toolName": "executeCode", "args": {"code": "1"}}
    parts = decode(
        encoder.encode(
            [
                ToolCallPart(**call),
                ToolCallPart(**call, status="running"),
                ToolCallPart(**call, status="success", result={"stdout": "1"}, durationMs=5),
                ToolCallPart(toolCallId="c2", toolName="queryDatabase", args={}, status="error", error="no"),
                StepFinished(1),
                TextDelta("Done."),
            ]
        )
    )

    assert [p for p in parts if p["type"].startswith("tool-output")] == [
        {"type": "tool-output-available", "toolCallId": "c1", "output": {"stdout": "1"}},
        {"type": "tool-output-error", "toolCallId": "c2", "errorText": "no"},
    ]
    assert [p["data"]["status"] for p in parts if p["type"] == "data-tool-call"] == [
        "pending",
        "running",
        "success",
        "error",
    ]
    assert types(parts)[-4:] == ["finish-step", "start-step", "text-start", "text-delta"]


def test_text_is_sent_as_utf8_json_and_survives_newlines():
    encoder = UIMessageStreamEncoder("m1")
    data = encoder.encode([TextDelta('line one\n\ndata: "quoted" ünïcode ✓')])

    assert data.count(b"\n\n") == 2  # one per part: the text's own newlines are escaped
    assert text_of(decode(data)) == 'line one\n\ndata: "quoted" ünïcode ✓'


def test_a_stored_message_replays_as_a_whole_stream():
    message = stored(
        content="The answer.",
        status="complete",
        metadata={"finishReason": "stop"},
        data_parts=[
            {"type": "thinking", "content": "hmm"},
            {
                "type": "provider-switch",
                "fromProvider": "groq",
                "toProvider": "google",
                "model": "g",
                "mode": "continue",
                "reason": "",
            },
        ],
    )
    parts = decode(UIMessageStreamEncoder(message.message_id).encode([message]))

    assert types(parts) == [
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "data-provider-switch",
        "text-end",
        "message-metadata",
        "finish-step",
        "finish",
        DONE,
    ]
    assert text_of(parts) == "The answer."


def test_a_stored_message_replays_only_the_rest_after_what_a_follower_already_has():
    message = stored(content="The whole answer.", status="complete", metadata={})
    encoder = UIMessageStreamEncoder(message.message_id)
    parts = decode(encoder.encode([TextDelta("The whole")]) + encoder.encode([message]))

    assert text_of(parts) == "The whole answer."
