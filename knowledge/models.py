"""Documents a person uploads, and the chunks (passages) that retrieval searches.

A chunk comes from a document or from a finished chat message. Messages are referred to by plain
UUID columns, not foreign keys: ``chat`` depends on ``knowledge``, never the reverse.

Besides the columns below, each database keeps a full-text index that is not on the model
(migration 0002): on PostgreSQL a generated ``search`` tsvector column with a GIN index, on SQLite
an FTS5 table kept in step by triggers. See ``knowledge/fulltext.py``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Document(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=200)
    filename = models.CharField(max_length=255)
    media_type = models.CharField(max_length=100)  # text/plain | text/markdown | application/pdf
    size = models.PositiveBigIntegerField(help_text="bytes, as uploaded")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="knowledge_doc_user_recent")]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """One passage: a few sentences to a few paragraphs (~500-800 characters) and its embedding."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(
        Document, null=True, blank=True, on_delete=models.CASCADE, related_name="chunks"
    )
    # Or a chat message (``chat.Message``), known only by id.
    conversation_id = models.UUIDField(null=True, blank=True)
    message_id = models.UUIDField(null=True, blank=True)
    role = models.CharField(max_length=16, blank=True, default="")  # the message's role; "" for documents
    ordinal = models.PositiveIntegerField()  # position within its document or message
    text = models.TextField()
    # float32 little-endian, L2-normalised (knowledge.embedding); bytes so one migration fits every
    # database. With pgvector this would be a vector(384) column: see knowledge/search.py.
    embedding = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ordinal"]
        indexes = [
            models.Index(fields=["user"], name="knowledge_chunk_user"),
            models.Index(fields=["conversation_id"], name="knowledge_chunk_conversation"),
            models.Index(fields=["message_id"], name="knowledge_chunk_message"),
        ]
        constraints = [
            # Exactly one source: a document, or a message (with its conversation).
            models.CheckConstraint(
                condition=(
                    Q(document__isnull=False, message_id__isnull=True, conversation_id__isnull=True)
                    | Q(document__isnull=True, message_id__isnull=False, conversation_id__isnull=False)
                ),
                name="knowledge_chunk_one_source",
            ),
            models.UniqueConstraint(fields=["document", "ordinal"], name="knowledge_chunk_document_ordinal"),
            models.UniqueConstraint(fields=["message_id", "ordinal"], name="knowledge_chunk_message_ordinal"),
        ]

    def __str__(self) -> str:
        return self.text[:60]
