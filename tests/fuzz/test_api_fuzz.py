"""Fuzzing the API and the page socket: no input may cause a 5xx or close the socket.

Two parts. A fixed hostile corpus (NUL, a lone surrogate, a 1 MB string, huge and negative
numbers, markup, odd ids) put into every field, parameter and path id of every operation in the
OpenAPI document, with Bearer and with session + CSRF auth, and the same corpus through the
WebSocket's actions. Then schemathesis generates requests from the OpenAPI document, positive and
negative. CHIMERA_FUZZ_EXAMPLES sets schemathesis' examples per operation and mode (CI: 10; the
README says how to run more).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from chat.models import Conversation, Message
from flags import runtime as flags
from tests.authz.test_matrix import body_for
from tests.chat.helpers import connect, frames_until, send

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE: list[Any] = [
    "\u0000",
    "a\u0000b",
    "\ud800",
    "x" * 1_000_000,
    "",
    " ",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "\u202eevil",
    10**30,
    -(2**63),
    2**63,
    -1,
    1.5e308,
    None,
    True,
    [],
    {},
]
ODD_IDS = ["%00", "0", "-1", "99999999999999999999999999", "not-a-uuid", "%F0%9F%92%A9", "a" * 300]
EXAMPLES = int(os.environ.get("CHIMERA_FUZZ_EXAMPLES", "10"))


@pytest.fixture
def own(alice):
    """alice's conversation with an answer, so valid ids lead somewhere."""
    flags.set_flags({"rateLimit": {"enabled": False}})
    conversation = Conversation.objects.create(user=alice, title="Fuzz")
    question = Message.objects.create(conversation=conversation, role="user", content="Q", status="complete")
    answer = Message.objects.create(
        conversation=conversation, parent_message=question, role="assistant", content="A", status="complete"
    )
    conversation.active_leaf = answer
    conversation.save()
    return {
        "conversation_id": conversation.id,
        "chat_id": conversation.id,
        "message_id": answer.id,
        "user_message_id": question.id,
        "key_id": alice.api_keys.first().id if alice.api_keys.exists() else conversation.id,
    }


def leaves(value: Any, path: tuple = ()):
    """Paths to every scalar in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))
    else:
        yield path


def replaced(value: Any, path: tuple, new: Any) -> Any:
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def signed_in(http, live_server, auth: str, key: str) -> None:
    if auth == "bearer":
        http.headers["Authorization"] = f"Bearer {key}"
        return
    form = http.get(live_server.url + "/accounts/login/").text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    http.post(
        live_server.url + "/accounts/login/",
        data={"username": "alice", "password": "correct-horse-battery", "csrfmiddlewaretoken": token},
    )
    http.headers["X-CSRFToken"] = http.cookies["csrftoken"]
    http.headers["Referer"] = live_server.url + "/"


@pytest.mark.parametrize("auth", ["bearer", "session"])
def test_the_hostile_corpus_in_every_field_of_every_operation_gets_no_5xx(
    live_server, emu, http, alice, alice_key, own, auth
):
    emu.timing(provider="*", ttft_ms=0, chunk_ms=0, chunks=3)
    signed_in(http, live_server, auth, alice_key)
    document = http.get(live_server.url + "/api/openapi.json").json()
    components = document["components"]["schemas"]
    tried = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            schema = (
                (operation.get("requestBody") or {})
                .get("content", {})
                .get("application/json", {})
                .get("schema")
            )
            base = body_for(schema, components, own) if schema else None
            names = re.findall(r"{(\w+)}", path)
            url = re.sub(r"{(\w+)}", lambda m: str(own[m.group(1)]), path)
            queries = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
            attempts: list[tuple[str, Any]] = []  # (url, body)
            for leaf in leaves(base) if base is not None else ():
                attempts += [(url, replaced(base, leaf, bad)) for bad in HOSTILE]
            for name in queries:
                for bad in HOSTILE:
                    text = bad[:8000] if isinstance(bad, str) else json.dumps(bad)  # URLs stop at 64 KB
                    # Percent-encoded by hand: a lone surrogate goes as the invalid UTF-8 it makes.
                    attempts.append((f"{url}?{name}={quote(text, errors='surrogatepass')}", base))
            for name in names:
                for odd in ODD_IDS:
                    attempts.append((path.replace("{" + name + "}", odd), base))
            for target, body in attempts:
                target = re.sub(r"{(\w+)}", lambda m: str(own[m.group(1)]), target)
                content = json.dumps(body).encode() if body is not None else None  # \ud800 stays an escape
                response = http.request(
                    method.upper(),
                    live_server.url + target,
                    content=content,
                    headers={"Content-Type": "application/json"} if content is not None else {},
                )
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    response.read()  # a stream must end cleanly too
                assert response.status_code < 500, (
                    auth,
                    method,
                    target[:300],
                    str(body)[:300],
                    response.text[:500],
                )
                tried += 1
    assert tried > 300


async def test_the_hostile_corpus_through_every_socket_action_leaves_the_socket_open(alice, emu, own):
    emu.timing(provider="*", ttft_ms=0, chunk_ms=0, chunks=3)
    communicator = await connect(alice)
    await communicator.connect()
    conversation, answer = str(own["conversation_id"]), str(own["message_id"])
    base = {
        "send": {"message": "hi", "conversation_id": conversation, "tier": "fast"},
        "edit": {"message": "hi", "message_id": str(own["user_message_id"])},
        "regenerate": {"message_id": answer},
        "stop": {"message_id": answer},
        "attach": {"message_id": answer},
        "run_code": {"message_id": answer, "part": 0},
    }
    for action, fields in base.items():
        for name in fields:
            for bad in [*HOSTILE, *ODD_IDS]:
                payload = {"action": action, **fields, name: bad}
                await communicator.send_to(text_data=json.dumps(payload))
    await communicator.send_to(text_data="not json at all \u0000")
    await communicator.send_to(text_data=json.dumps([1, 2, 3]))
    # Let the answers to all of that arrive (the socket must send them, never close), then a real
    # send on the same socket still completes.
    while not await communicator.receive_nothing(timeout=3):
        await communicator.receive_from()  # asserts each output is a frame, not a close
    await send(communicator, action="send", message="Still here?")
    await frames_until(communicator, 'data-testid="message-complete"', timeout=60)
    await communicator.disconnect()


# ---- schemathesis: generated from the OpenAPI document ------------------------------------------
# Driven by hand (operation strategies under hypothesis' @given) rather than through its pytest
# plugin, whose from_fixture does not run under pytest 9.
def test_generated_requests_get_no_5xx(live_server, emu, alice_key, own):
    emu.timing(provider="*", ttft_ms=0, chunk_ms=0, chunks=3)
    schema = schemathesis.openapi.from_url(live_server.url + "/api/openapi.json")
    headers = {"Authorization": f"Bearer {alice_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14

    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        def no_5xx(case) -> None:
            response = case.call(base_url=live_server.url, headers=headers, timeout=60)
            assert response.status_code < 500, (case.method, case.path, case.body, response.text[:500])

        no_5xx()
