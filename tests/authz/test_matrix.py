"""The authorization matrix: alice against bob's things, over every URL, every API operation and
every socket action, generated from the URL conf and the OpenAPI document, so a new endpoint is
covered without editing this file. Every try must be refused (404: nothing there for alice, or 405
for a method a URL does not take; API keys cannot manage keys: 403) and change nothing anywhere.
Staff see everyone's conversations through the admin.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.apikeys import create_api_key
from accounts.models import ApiKey
from chat.models import Conversation, Message
from knowledge.models import Chunk, Document
from tests.chat.helpers import connect, send
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "bob-secret-7f3a"  # in every text of bob's; must never reach alice
PARAMS = ("conversation_id", "message_id", "document_id", "chat_id", "key_id", "fmt")
PUBLIC = ("accounts/", "api/openapi.json", "api/docs", "admin/login/", "favicon.ico")


@pytest.fixture
def world(alice, bob):
    """Each person's things, ids by parameter name; bob's answer holds runnable code."""

    def things(user, secret: str) -> dict[str, Any]:
        conversation = Conversation.objects.create(user=user, title=f"Plans {secret}")
        question = Message.objects.create(
            conversation=conversation, role="user", content=f"Question {secret}", status="complete"
        )
        answer = Message.objects.create(
            conversation=conversation,
            parent_message=question,
            role="assistant",
            content=f"Answer {secret}",
            status="complete",
            data_parts=[
                {"type": "code", "language": "python", "code": f"print('{secret}')", "executable": True}
            ],
        )
        conversation.active_leaf = answer
        conversation.save()
        document = Document.objects.create(
            user=user, title=f"Doc {secret}", filename="d.txt", media_type="text/plain", size=10
        )
        key, raw = create_api_key(user, "matrix")
        return {
            "conversation_id": conversation.id,
            "chat_id": conversation.id,
            "message_id": answer.id,
            "user_message_id": question.id,
            "document_id": document.id,
            "key_id": key.id,
            "raw_key": raw,
            "fmt": "json",  # not an id: the export format
        }

    return {"alice": things(alice, "alice-own"), "bob": things(bob, SECRET)}


def snapshot() -> tuple:
    """Everything stored, in a comparable form."""
    return (
        sorted(Conversation.objects.values_list("id", "title", "is_archived", "active_leaf_id", "parent_id")),
        sorted(Message.objects.values_list("id", "content", "status", "parent_message_id")),
        sorted(Document.objects.values_list("id", "title")),
        Chunk.objects.count(),
        sorted(ApiKey.objects.values_list("id", "revoked_at")),
        UsageMetric.objects.count(),
    )


def id_variants(names: list[str], world) -> list[dict[str, Any]]:
    """bob's ids for every parameter, and mixes of alice's and bob's (own conversation, his message)."""
    bob, alice = world["bob"], world["alice"]
    variants = [dict(bob)]
    if "conversation_id" in names and "message_id" in names:
        variants.append({**bob, "conversation_id": alice["conversation_id"]})
        variants.append({**bob, "message_id": alice["message_id"]})
    return variants


# ---- the URL conf ------------------------------------------------------------------------------
def url_patterns(patterns=None, prefix: str = ""):
    for p in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(p, URLResolver):
            if str(p.pattern) not in ("admin/", "api/"):  # the admin: staff only; the API: below
                yield from url_patterns(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern)


def test_every_page_url_with_someone_elses_ids_is_a_404_and_changes_nothing(client, alice, world):
    client.force_login(alice)
    covered = 0
    before = snapshot()
    for route in url_patterns():
        names = re.findall(r"<(?:\w+:)?(\w+)>", route)
        if not names or not set(names) <= set(PARAMS):
            continue
        for ids in id_variants(names, world):
            path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m, ids=ids: str(ids[m.group(1)]), route)
            for method in ("get", "post"):
                response = getattr(client, method)(path, {"title": "pwned", "content": "pwned"})
                assert response.status_code in (404, 405), (method, path, response.status_code)
                assert SECRET not in response.content.decode(errors="replace"), (method, path)
                covered += 1
    assert covered >= 8
    assert snapshot() == before


# ---- the OpenAPI document ----------------------------------------------------------------------
def _resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        return _resolve(schema, components)
    return schema


def body_for(schema: dict, components: dict, ids: dict[str, Any]) -> Any:
    """A valid body for ``schema`` that names bob's things wherever the schema takes an id."""
    schema = _resolve(schema, components)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        out = {
            name: body_for(props[name], components, ids)
            for name in schema.get("required", [])
            if name in props
        }
        for name, key in (
            ("conversationId", "conversation_id"),
            ("messageId", "message_id"),
            ("id", "conversation_id"),
        ):
            if name in props:
                out[name] = str(ids[key])
        if "title" in props:
            out["title"] = "pwned"
        if "trigger" in props:
            out["trigger"] = "regenerate-message"
        return out
    if kind == "array":
        if "role" in _resolve(schema["items"], components).get("properties", {}):
            return [{"role": "user", "content": "pwned"}]
        return [body_for(schema["items"], components, ids)]
    if "enum" in schema:
        return schema["enum"][0]
    return {"string": "pwned", "integer": 1, "number": 1, "boolean": True}.get(kind, "pwned")


def api_operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


@pytest.mark.parametrize("auth", ["bearer", "session"])
def test_every_api_operation_with_someone_elses_ids_is_refused_and_changes_nothing(
    live_server, emu, alice, world, auth
):
    import httpx2

    key = world["alice"]["raw_key"]
    with httpx2.Client(base_url=live_server.url, timeout=30) as http:
        if auth == "bearer":
            http.headers["Authorization"] = f"Bearer {key}"
        else:
            login_page = http.get("/accounts/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
            http.post(
                "/accounts/login/",
                data={"username": "alice", "password": "correct-horse-battery", "csrfmiddlewaretoken": token},
            )
            http.headers["X-CSRFToken"] = http.cookies["csrftoken"]
            http.headers["Referer"] = live_server.url + "/"
        document = http.get("/api/openapi.json").json()
        components = document.get("components", {}).get("schemas", {})
        before = snapshot()
        covered = 0
        for path, method, operation in api_operations(document):
            names = re.findall(r"{(\w+)}", path)
            schema = (
                (operation.get("requestBody") or {})
                .get("content", {})
                .get("application/json", {})
                .get("schema")
            )
            if not names and not (
                schema
                and {"conversationId", "messageId"} & set(_resolve(schema, components).get("properties", {}))
            ):
                continue  # an operation on one's own collection (lists, new keys): checked below
            for ids in id_variants(names or ["conversation_id", "message_id"], world):
                url = re.sub(r"{(\w+)}", lambda m, ids=ids: str(ids[m.group(1)]), path)
                body = body_for(schema, components, ids) if schema else None
                response = http.request(method.upper(), url, json=body)
                allowed = (403, 404) if path.startswith("/api/keys") and auth == "bearer" else (404,)
                assert response.status_code in allowed, (
                    auth,
                    method,
                    url,
                    body,
                    response.status_code,
                    response.text,
                )
                assert SECRET not in response.text, (method, url)
                covered += 1
        assert covered >= 12
        assert snapshot() == before

        # Own collections hold only one's own things.
        listed = http.get("/api/conversations").text
        assert str(world["alice"]["conversation_id"]) in listed and SECRET not in listed
    assert emu.requests() == []  # nothing of bob's was ever sent to a model


def test_pages_that_list_things_show_only_ones_own(client, alice, world):
    client.force_login(alice)
    for path in ("/", f"/?q={SECRET}", "/knowledge/", "/accounts/settings/"):
        page = client.get(path).content.decode()
        for theirs in (f"Plans {SECRET}", f"Doc {SECRET}", f"Question {SECRET}"):
            assert theirs not in page, (path, theirs)  # (the search box shows the query itself)
    assert "alice-own" in client.get("/").content.decode()


async def test_every_socket_action_on_someone_elses_ids_is_refused_and_changes_nothing(alice, emu, world):
    from asgiref.sync import sync_to_async

    bob = world["bob"]
    actions = [
        {"action": "send", "message": "pwned", "conversation_id": str(bob["conversation_id"])},
        {"action": "edit", "message": "pwned", "message_id": str(bob["user_message_id"])},
        {
            "action": "edit",
            "message": "pwned",
            "message_id": str(bob["user_message_id"]),
            "conversation_id": str(world["alice"]["conversation_id"]),
        },
        {"action": "regenerate", "message_id": str(bob["message_id"])},
        {"action": "continue", "message_id": str(bob["message_id"])},
        {"action": "stop", "message_id": str(bob["message_id"])},
        {"action": "attach", "message_id": str(bob["message_id"])},
        {"action": "run_code", "message_id": str(bob["message_id"]), "part": 0},
        {"action": "save_edit", "message": "pwned", "message_id": str(bob["user_message_id"])},
    ]
    before = await sync_to_async(snapshot)()
    communicator = await connect(alice)
    await communicator.connect()
    for fields in actions:
        await send(communicator, **fields)
    # A marker action answered in order: everything before it has been handled.
    await send(communicator, action="no-such-action")
    frames = []
    while not frames or "no-such-action" not in frames[-1]:
        frames.append(await communicator.receive_from(timeout=30))
    await communicator.disconnect()
    assert SECRET not in "".join(frames)
    assert (
        sum("does not exist" in f or "no such" in f.lower() or "no message of yours" in f for f in frames)
        >= 6
    ), frames
    assert await sync_to_async(snapshot)() == before
    assert emu.requests() == []


def test_staff_see_everyones_conversations_in_the_admin(client, staff, world):
    client.force_login(staff)
    page = client.get("/admin/chat/conversation/").content.decode()
    assert SECRET in page and "alice-own" in page
    assert (
        client.get(f"/admin/chat/conversation/{world['bob']['conversation_id']}/change/").status_code == 200
    )


def test_without_signing_in_nothing_is_served_but_the_doors(client, world, settings):
    settings.CHIMERA_METRICS_TOKEN = "matrix-metrics-token"  # /metrics on (off, it is a 404): 401 here
    for route in url_patterns():
        if route.startswith(PUBLIC) or route in ("api/",):
            continue
        path = "/" + re.sub(
            r"<(?:\w+:)?(\w+)>", lambda m: str(world["bob"].get(m.group(1), uuid.uuid4())), route
        )
        response = client.get(path)
        assert response.status_code in (302, 401, 405), (path, response.status_code)
        if response.status_code == 302:
            assert response.url.startswith(("/accounts/login/", "/admin/login/")), path
