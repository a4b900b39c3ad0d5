"""The provider emulator itself: its wire formats and its control API, over raw HTTP."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest

from tests.fixtures.emulator import EmulatorHandle

OPENAI_BODY = {
    "model": "llama-3.3-70b-versatile",
    "stream": True,
    "messages": [{"role": "user", "content": "Explain photosynthesis"}],
}


def chat(emu: EmulatorHandle, provider: str = "groq", body: dict | None = None, key: str = "sk-secret"):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.post(
        emu.base_url(provider) + "/chat/completions", json=body or OPENAI_BODY, headers=headers, timeout=10
    )


def sse_data(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def content_of(response) -> str:
    chunks = [json.loads(d) for d in sse_data(response.text) if d != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_it_answers_health_checks(emu):
    assert httpx2.get(emu.url + "/_control/health").json() == {"ok": True}


def test_it_streams_openai_chunks_then_a_finish_chunk_and_done(emu):
    body = {**OPENAI_BODY, "stream_options": {"include_usage": True}}
    data = sse_data(chat(emu, body=body).text)

    assert data[-1] == "[DONE]"
    usage = json.loads(data[-2])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 10
    assert json.loads(data[-3])["choices"][0]["finish_reason"] == "stop"


def test_it_sends_the_usage_chunk_only_when_asked(emu):
    data = sse_data(chat(emu).text)

    assert not any('"usage"' in d for d in data)


def test_it_answers_the_same_conversation_with_the_same_text(emu):
    assert content_of(chat(emu)) == content_of(chat(emu))
    assert "photosynthesis" in content_of(chat(emu)).lower()


def test_it_continues_when_the_last_message_is_the_assistants(emu):
    body = {**OPENAI_BODY, "messages": [*OPENAI_BODY["messages"], {"role": "assistant", "content": "Plants"}]}

    assert content_of(chat(emu, body=body)).startswith(" and to pick up where we left off")


def test_it_answers_without_streaming_when_asked(emu):
    response = chat(emu, body={**OPENAI_BODY, "stream": False})

    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize(
    ("method", "path", "body", "shape"),
    [
        (
            "POST",
            "/groq/openai/v1/chat/completions",
            OPENAI_BODY,
            lambda j: j["error"]["code"] == "invalid_api_key",
        ),
        (
            "POST",
            "/gemini/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse",
            {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            lambda j: j["error"]["status"] == "UNAUTHENTICATED",
        ),
        (
            "POST",
            "/anthropic/v1/messages",
            {"model": "claude-sonnet-5-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
            lambda j: j["error"]["type"] == "authentication_error",
        ),
    ],
)
def test_it_rejects_a_request_without_an_api_key_in_the_wire_format(emu, method, path, body, shape):
    response = httpx2.request(method, emu.url + path, json=body)

    assert response.status_code == 401
    assert shape(response.json())


def test_faults_are_consumed_by_times_then_requests_succeed(emu):
    emu.fault(provider="groq", kind="status", status=503, retry_after=2, times=2)

    statuses = [chat(emu).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]


def test_a_fault_can_let_requests_through_first(emu):
    emu.fault(provider="groq", kind="status", status=503, skip=2, times=1)  # e.g. a tool loop's third call

    statuses = [chat(emu).status_code for _ in range(4)]

    assert statuses == [200, 200, 503, 200]


def test_a_status_fault_answers_the_wire_error_body_and_retry_after(emu):
    emu.fault(provider="anthropic", kind="status", status=429, retry_after=2)

    response = httpx2.post(
        emu.base_url("anthropic") + "/v1/messages",
        json={
            "model": "claude-sonnet-5-5",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"x-api-key": "k"},
    )

    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_a_fault_without_times_lasts_until_cleared(emu):
    emu.fault(provider="groq", kind="status", status=500)

    assert [chat(emu).status_code for _ in range(3)] == [500, 500, 500]
    emu.clear()
    assert chat(emu).status_code == 200


def test_faults_are_matched_by_provider(emu):
    emu.fault(provider="google", kind="status", status=503)

    assert chat(emu, "groq").status_code == 200
    assert chat(emu, "gateway").status_code == 200
    response = httpx2.post(
        emu.base_url("google") + "/v1beta/models/gemini-3.8-flash:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": "k"},
    )
    assert response.status_code == 503
    assert response.json()["error"]["status"] == "UNAVAILABLE"


def test_a_cut_fault_ends_the_stream_without_a_finish_or_done(emu):
    emu.fault(provider="groq", kind="cut", after_tokens=5, times=1)

    data = sse_data(chat(emu).text)

    assert "[DONE]" not in data
    assert not any('"finish_reason":"stop"' in d for d in data)
    assert emu.requests()[-1]["outcome"]["tokens_sent"] == 5


def test_a_malformed_fault_sends_a_chunk_that_is_not_json(emu):
    emu.fault(provider="groq", kind="malformed", after_tokens=1, times=1)

    data = sse_data(chat(emu).text)

    with pytest.raises(ValueError):
        json.loads(data[-1])


ANTHROPIC_BODY = {
    "model": "claude-sonnet-5-5",
    "max_tokens": 100,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


def anthropic_stream(emu: EmulatorHandle) -> str:
    response = httpx2.post(
        emu.base_url("anthropic") + "/v1/messages",
        json=ANTHROPIC_BODY,
        headers={"x-api-key": "k"},
        timeout=10,
    )
    return response.text


def test_an_error_fault_sends_the_wires_error_event_inside_the_stream(emu):
    emu.fault(provider="anthropic", kind="error", after_tokens=2, times=1)

    body = anthropic_stream(emu)

    assert body.count("text_delta") == 2 and "message_stop" not in body
    assert body.endswith(
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )


def test_a_cut_fault_can_end_the_body_in_the_middle_of_an_event(emu):
    emu.fault(provider="anthropic", kind="cut", after_tokens=3, mid_event=True, times=1)

    body = anthropic_stream(emu)

    complete, _, rest = body.rpartition("\n\n")
    assert complete.count("text_delta") == 3
    assert rest.startswith("event: content_block_delta") and "message_stop" not in body


async def test_a_stall_does_not_block_other_requests(emu):
    emu.fault(provider="groq", kind="stall", stall_ms=5_000, times=1)
    async with httpx2.AsyncClient(timeout=10) as client:
        headers = {"authorization": "Bearer k"}
        url = emu.base_url("groq") + "/chat/completions"
        async with client.stream("POST", url, json=OPENAI_BODY, headers=headers) as stalled:
            assert stalled.status_code == 200

            async def first_content() -> str:
                async for line in stalled.aiter_lines():
                    if '"content":' in line and '"role"' not in line:
                        return line
                return ""

            first = asyncio.ensure_future(first_content())
            other = await client.post(url, json=OPENAI_BODY, headers=headers)

            assert other.status_code == 200 and "[DONE]" in other.text
            assert not first.done()
            first.cancel()


def test_the_request_log_records_requests_with_credentials_redacted(emu):
    chat(emu, "gateway")

    [entry] = emu.requests()
    assert entry["method"] == "POST"
    assert entry["path"] == "/gateway/v1/chat/completions"
    assert (entry["provider"], entry["model"]) == ("gateway", "llama-3.3-70b-versatile")
    assert entry["headers"]["authorization"] == "[redacted]"
    assert "sk-secret" not in json.dumps(entry)
    assert entry["body"]["messages"] == OPENAI_BODY["messages"]
    assert entry["outcome"]["status"] == 200 and entry["outcome"]["finished"]
    assert entry["outcome"]["tokens_sent"] > 10


def test_the_request_log_records_the_fault_applied_and_can_be_cleared(emu):
    emu.fault(provider="groq", kind="status", status=503, times=1)
    chat(emu)

    assert emu.requests()[-1]["outcome"]["fault"] == "status"
    assert emu.requests()[-1]["outcome"]["status"] == 503
    httpx2.delete(emu.url + "/_control/requests")
    assert emu.requests() == []


def test_timing_can_fix_the_number_of_chunks_at_runtime(emu):
    emu.timing(provider="*", chunks=7)

    data = sse_data(chat(emu).text)

    assert sum('"content":' in d and '"role"' not in d for d in data) == 7
    emu.clear()
    assert sum('"content":' in d and '"role"' not in d for d in sse_data(chat(emu).text)) != 7


def test_the_control_api_rejects_an_unknown_fault_kind(emu):
    response = httpx2.post(emu.url + "/_control/faults", json={"provider": "groq", "kind": "explode"})

    assert response.status_code == 400


def test_anthropic_rejects_sampling_parameters_on_the_current_api_version(emu):
    response = httpx2.post(
        emu.base_url("anthropic") + "/v1/messages",
        json={
            "model": "claude-sonnet-5-5",
            "max_tokens": 10,
            "temperature": 1,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"x-api-key": "k", "anthropic-version": "2026-10-21"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "temperature: Extra inputs are not permitted"


def test_anthropic_streams_need_event_lines(emu):
    response = httpx2.post(
        emu.base_url("anthropic") + "/v1/messages",
        json={
            "model": "claude-sonnet-5-5",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"x-api-key": "k"},
    )

    events = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_delta" in events and "message_delta" in events
