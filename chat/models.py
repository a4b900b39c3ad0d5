"""Conversations and the message tree.

Messages form a tree through ``parent_message``: editing a user message or
regenerating an answer adds a sibling, never deletes. The conversation's
``active_leaf`` is the selected branch, so the choice survives reloads.
Forking copies a path into a new conversation whose ``parent`` points back.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.TextField(blank=True, default="")
    summary = models.TextField(blank=True, default="")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="forks",
        help_text="Forked from",
    )
    is_archived = models.BooleanField(default=False)
    settings = models.JSONField(default=dict, blank=True)
    active_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "conversations"
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["user"], name="idx_conversations_user_id"),
            models.Index(fields=["user", "is_archived", "-updated_at"], name="idx_conversations_user_recent"),
        ]

    def __str__(self) -> str:
        return self.title or "New conversation"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"
        TOOL = "tool"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        INCOMPLETE = "incomplete"  # stopped, or a stream that broke: partial text kept
        ERROR = "error"  # no text could be produced

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    parent_message = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    metadata = models.JSONField(null=True, blank=True)  # ChimeraMetadata (chat.schemas)
    data_parts = models.JSONField(null=True, blank=True)  # list of ChimeraDataPart
    tool_invocations = models.JSONField(null=True, blank=True)
    # While streaming: the provider attempts so far, as checkpointed (usage.recording.attempt_json),
    # so an answer whose process died is settled with its usage rows. Cleared when the answer is final.
    pending_usage = models.JSONField(null=True, blank=True)
    is_edited = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Touched by every checkpoint: a `streaming` message whose process died stops being touched.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "messages"
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["conversation"], name="idx_messages_conversation_id"),
            models.Index(fields=["conversation", "created_at"], name="idx_messages_conv_created"),
            # The orphan sweep's query, run by every web process every few seconds: only the few
            # answers being written are in this index.
            models.Index(
                fields=["updated_at"],
                name="idx_messages_streaming",
                condition=models.Q(status="streaming"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"
