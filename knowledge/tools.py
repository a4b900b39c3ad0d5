"""The searchKnowledge tool: the model searches the user's documents and past conversations."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field, field_validator

from knowledge.rag import source_part
from knowledge.search import asearch
from tools.base import Tool, ToolContext, ToolResult


class SearchKnowledgeArgs(BaseModel):
    query: str = Field(
        min_length=1, max_length=1000, description="What to look for, in words (a question or keywords)."
    )
    k: int = Field(default=5, ge=1, le=20, description="How many passages to return.")

    @field_validator("query")
    @classmethod
    def _printable(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("the query must not contain NUL characters")
        if not value.strip():
            raise ValueError("the query must not be blank")
        return value


class SearchKnowledge(Tool):
    name = "searchKnowledge"
    description = (
        "Search the user's own knowledge: documents they uploaded and their earlier conversations. "
        "Returns the most relevant passages, numbered; cite a passage you use as [n]."
    )
    Args = SearchKnowledgeArgs
    timeout_s: ClassVar[float] = 20.0
    tiers: ClassVar[frozenset[str]] = frozenset({"free", "pro"})

    async def run(self, ctx: ToolContext, args: SearchKnowledgeArgs) -> ToolResult:
        passages = await asearch(ctx.user_id, args.query, args.k)
        output = [
            {"n": n, "title": p.title, "excerpt": p.text, "url": p.url}
            for n, p in enumerate(passages, start=1)
        ]
        return ToolResult(output=output, parts=tuple(source_part(p) for p in passages))
