"""A real AI SDK client (the `ai` npm package, run by Node) talks to /api/chat/v2.

tests/node/read-chat.mjs sends requests with the package's DefaultChatTransport (what useChat
uses) and assembles the answers with readUIMessageStream, so the package's own parser and
chunk schema judge our stream. Its dependencies come from tests/node/package-lock.json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


@pytest.fixture(scope="session")
def node_check() -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node 20 and npm are needed for the AI SDK client check (tests/node).")
    if not (NODE_DIR / "node_modules" / "ai" / "package.json").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600, capture_output=True
        )
    return [node, str(NODE_DIR / "read-chat.mjs")]


def test_the_ai_sdk_reads_the_stream_and_assembles_the_text_and_metadata(
    node_check, live_server, emu, alice, alice_key
):
    result = subprocess.run(
        [*node_check, live_server.url, alice_key], cwd=NODE_DIR, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["errors"] == []
    first, second = out["answers"]
    for answer in (first, second):
        stored = Message.objects.get(pk=answer["id"])
        assert answer["role"] == "assistant" and answer["partTypes"] == ["step-start", "text"]
        assert stored.status == "complete" and answer["text"] == stored.content and len(answer["text"]) > 40
        metadata = answer["metadata"]
        assert metadata["status"] == "complete" and metadata["finishReason"] == "stop"
        for key in ("modelUsed", "provider", "tokenCount", "traceId", "sessionId", "gatewayCache", "cost"):
            assert metadata[key] == stored.metadata[key], key
        assert metadata["tokenCount"] > 0
    # One useChat chat is one conversation: question, answer, follow-up, answer.
    conversation_id = first["metadata"]["sessionId"]
    assert second["metadata"]["sessionId"] == conversation_id
    assert [
        m.role for m in Message.objects.filter(conversation_id=conversation_id).order_by("created_at")
    ] == ["user", "assistant", "user", "assistant"]
    assert out["resumedStream"] is False  # nothing in flight: the resume URL answered 204


def test_the_ai_sdk_reads_a_tool_call_as_its_own_tool_part(node_check, live_server, emu, alice, alice_key):
    code = {"language": "python", "code": "print(6 * 7)"}
    question = f"Compute it [[tool:executeCode {json.dumps(code)}]]"
    result = subprocess.run(
        [node_check[0], node_check[1], "--tools=executeCode", live_server.url, alice_key, question, "Thanks"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["errors"] == []
    answer = out["answers"][0]
    [tool] = answer["toolParts"]  # the package's own reader built it from our tool-* chunks
    assert tool["type"] == "tool-executeCode" and tool["state"] == "output-available"
    assert tool["input"] == code
    assert tool["output"]["stdout"] == "42\n" and tool["output"]["exitCode"] == 0
    stored = Message.objects.get(pk=answer["id"])
    assert tool["toolCallId"] == stored.tool_invocations[0]["toolCallId"]
    assert answer["partTypes"].index("tool-executeCode") < answer["partTypes"].index("text")
    assert "42" in answer["text"] and answer["text"] == stored.content
