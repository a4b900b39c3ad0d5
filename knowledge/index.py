"""Putting knowledge in: documents on upload, chat messages when their turn is done; and taking it out.

Embedding happens before the transaction, so the database is held only for the inserts. On upload
it runs inside the request for now (a 200,000-character document, the default limit, is about 300
passages: some 10 s on 2 cores); a Celery task is the next step if that grows. The page's upload
view is a sync view, which Django runs on a thread, so no event loop waits for it.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from knowledge import embedding, offload
from knowledge.chunking import split_into_chunks
from knowledge.extract import UploadRejected, clean_text, extract
from knowledge.models import Chunk, Document

__all__ = [
    "UploadRejected",
    "add_document",
    "aforget_conversation",
    "aindex_message",
    "forget_conversation",
    "index_message",
]


def _chunks(text: str, **source: Any) -> list[Chunk]:
    passages = split_into_chunks(text)
    vectors = embedding.embed(passages)
    return [
        Chunk(ordinal=n, text=passage, embedding=embedding.to_bytes(vector), **source)
        for n, (passage, vector) in enumerate(zip(passages, vectors, strict=True))
    ]


def add_document(user: Any, filename: str, data: bytes, title: str = "") -> Document:
    """Read, chunk, embed and store an upload; ``UploadRejected`` says why a file is refused."""
    found = extract(
        filename,
        data,
        max_bytes=settings.CHIMERA_KNOWLEDGE_MAX_UPLOAD_BYTES,
        max_chars=settings.CHIMERA_KNOWLEDGE_MAX_CHARS,
    )
    chunks = _chunks(found.text, user=user)
    title = clean_text(title).strip()[:200] or found.title
    with transaction.atomic():
        document = Document.objects.create(
            user=user, title=title, filename=found.filename, media_type=found.media_type, size=len(data)
        )
        for chunk in chunks:
            chunk.document = document
        Chunk.objects.bulk_create(chunks)
    return document


def index_message(
    user_id: Any, conversation_id: uuid.UUID, message_id: uuid.UUID, role: str, text: str
) -> int:
    """Make a finished chat message searchable for its owner; returns the number of passages.

    Idempotent: indexing a message again replaces its passages. Blank text removes them.
    """
    chunks = _chunks(
        clean_text(text),
        user_id=user_id,
        conversation_id=conversation_id,
        message_id=message_id,
        role=role[:16],
    )
    try:
        with transaction.atomic():
            Chunk.objects.filter(message_id=message_id).delete()
            Chunk.objects.bulk_create(chunks)
    except IntegrityError:
        # The same message indexed twice at once (PostgreSQL): the other call's passages stand.
        # Anything else (an unknown user, a missing id) has left none, and is the caller's bug.
        existing = Chunk.objects.filter(message_id=message_id).count()
        if not existing:
            raise
        return existing
    return len(chunks)


def forget_conversation(conversation_id: uuid.UUID) -> int:
    """Remove every passage of a conversation's messages (when it is deleted); returns how many."""
    deleted, _ = Chunk.objects.filter(conversation_id=conversation_id).delete()
    return deleted


async def aindex_message(
    user_id: Any, conversation_id: uuid.UUID, message_id: uuid.UUID, role: str, text: str
) -> int:
    """``index_message`` for async callers (the turn): runs on the knowledge threads."""
    return await offload.run(index_message, user_id, conversation_id, message_id, role, text)


async def aforget_conversation(conversation_id: uuid.UUID) -> int:
    return await offload.run(forget_conversation, conversation_id)
