"""Hybrid retrieval on a small fixed corpus: which passage comes first, and whose passages appear."""

from __future__ import annotations

import pytest
from django.db import connection

from knowledge.index import forget_conversation, index_message
from knowledge.models import Chunk
from knowledge.search import asearch, fulltext_ranking, search, vector_ranking
from tests.knowledge import helpers

pytestmark = pytest.mark.django_db


def first(user, query):
    passages = search(user.id, query, k=5)
    assert passages, f"nothing found for {query!r}"
    return passages[0]


# ---- keyword-ish queries: exact names, codes and rare words (the full-text half) ---------------
@pytest.mark.parametrize(
    ("query", "document", "needle"),
    [
        ("INV-20931", "invoices", "Kestrel Logistics"),
        ("Kestrel Logistics", "invoices", "INV-20931"),
        ("barrel adjuster derailleur", "bicycle", "barrel adjuster"),
        ("tram 28", "lisbon", "Alfama"),
        ("autolyse", "sourdough", "hydration"),
    ],
)
def test_a_keyword_query_ranks_the_passage_with_those_words_first(alice, corpus, query, document, needle):
    passage = first(alice, query)
    assert passage.document_id == getattr(corpus, document).id
    assert needle in passage.text
    assert fulltext_ranking(alice.id, query)[0] == passage.chunk_id


def test_a_rare_word_the_embeddings_miss_is_still_found_by_full_text(alice, corpus):
    # The model places "barrel adjuster derailleur" near nothing in particular; the words do it.
    assert vector_ranking(alice.id, "barrel adjuster derailleur") == []
    assert first(alice, "barrel adjuster derailleur").document_id == corpus.bicycle.id


# ---- paraphrase-ish queries: no word in common with the passage (the embedding half) -----------
@pytest.mark.parametrize(
    ("query", "document", "needle"),
    [
        ("which customer has not settled their bill yet", "invoices", "overdue"),
        ("sightseeing plans in Portugal", "lisbon", "Lisbon itinerary"),
        ("making a loaf with wild yeast", "sourdough", "starter"),
        ("my leafy green friend on the windowsill is wilting and smells mouldy", "houseplants", "root rot"),
    ],
)
def test_a_paraphrase_ranks_the_passage_with_that_meaning_first(alice, corpus, query, document, needle):
    passage = first(alice, query)
    assert passage.document_id == getattr(corpus, document).id
    assert needle in passage.text
    assert vector_ranking(alice.id, query)[0][0] == passage.chunk_id


@pytest.mark.parametrize(
    "query", ["which customer has not settled their bill yet", "sightseeing plans in Portugal"]
)
def test_a_paraphrase_sharing_no_word_with_the_passage_is_found_by_meaning_alone(alice, corpus, query):
    by_text = fulltext_ranking(alice.id, query)
    passage = first(alice, query)
    assert passage.chunk_id not in by_text


def test_the_right_passage_of_a_longer_document_comes_first(alice, corpus):
    assert corpus.bicycle.chunks.count() == 2
    assert "toed in" in first(alice, "squeaky brakes").text
    assert "300 kilometres" in first(alice, "how often should the chain be oiled").text


def test_conversations_are_searched_with_documents(alice, corpus):
    passage = first(alice, "what should I give my pet to eat")
    assert passage.conversation_id == helpers.CAT_CONVERSATION
    assert passage.message_id in (helpers.CAT_QUESTION, helpers.CAT_ANSWER)
    assert passage.url == f"/c/{helpers.CAT_CONVERSATION}/#m-{passage.message_id}"
    assert passage.document_id is None

    named = first(alice, "Mochi")
    assert named.message_id == helpers.CAT_QUESTION
    assert named.title.startswith("You, in a conversation of ")


def test_a_passage_links_to_its_place_in_the_document(alice, corpus):
    passage = first(alice, "Kestrel Logistics")
    assert passage.url == f"/knowledge/{corpus.invoices.id}/#chunk-{passage.chunk_id}"
    assert passage.title == "Invoices 2025"
    assert passage.score > 0


def test_passages_come_best_first_and_at_most_k(alice, corpus):
    passages = search(alice.id, "brakes chain tyres bread invoice", k=3)
    assert len(passages) == 3
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    assert len({p.chunk_id for p in passages}) == 3


def test_a_query_about_nothing_the_user_has_finds_nothing(alice, corpus):
    assert search(alice.id, "quantum chromodynamics on a lattice") == []


def test_blank_or_punctuation_only_queries_find_nothing(alice, corpus):
    assert search(alice.id, "   ") == []
    assert search(alice.id, "\x00\x00") == []
    assert fulltext_ranking(alice.id, "?!…") == []


def test_a_user_without_knowledge_gets_nothing(bob, corpus):
    assert search(bob.id, "Kestrel Logistics") == []


# ---- isolation ---------------------------------------------------------------------------------
def test_another_users_passages_never_appear(alice, bob, corpus, bobs_copy):
    bobs = set(Chunk.objects.filter(user=bob).values_list("id", flat=True))
    alices = set(Chunk.objects.filter(user=alice).values_list("id", flat=True))
    for query in ["INV-20931 Kestrel Logistics", "Mochi salmon", "sourdough", "overdue bill", "x"]:
        assert not {p.chunk_id for p in search(alice.id, query, k=20)} & bobs
        assert {p.chunk_id for p in search(bob.id, query, k=20)} <= bobs
        assert not set(fulltext_ranking(alice.id, query)) & bobs
        assert not {chunk_id for chunk_id, _ in vector_ranking(alice.id, query)} & bobs
    assert first(bob, "Marlow & Finch overdue").document_id == bobs_copy.id
    assert first(alice, "Kestrel Logistics").chunk_id in alices


# ---- keeping the index in step with deletions ----------------------------------------------------
def test_deleting_a_document_removes_its_passages_from_search(alice, corpus):
    gone = set(corpus.invoices.chunks.values_list("id", flat=True))
    corpus.invoices.delete()
    assert not Chunk.objects.filter(id__in=gone).exists()
    for query in ["INV-20931", "Kestrel Logistics", "which customer has not settled their bill yet"]:
        assert not {p.chunk_id for p in search(alice.id, query, k=20)} & gone
        assert not set(fulltext_ranking(alice.id, query)) & gone
    assert first(alice, "tram 28").document_id == corpus.lisbon.id  # the rest is untouched


def test_the_full_text_index_follows_every_insert_and_delete(alice, corpus):
    def indexed() -> int:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("SELECT count(*) FROM knowledge_chunk_fts")
            else:
                cursor.execute("SELECT count(*) FROM knowledge_chunk WHERE search IS NOT NULL")
            return cursor.fetchone()[0]

    assert indexed() == Chunk.objects.count() > 0
    corpus.bicycle.delete()
    forget_conversation(helpers.CAT_CONVERSATION)
    assert indexed() == Chunk.objects.count() > 0
    alice.delete()  # the ORM's cascade, as when an account is removed
    assert indexed() == Chunk.objects.count() == 0


def test_forgetting_a_conversation_removes_its_passages(alice, corpus):
    assert first(alice, "Mochi").conversation_id == helpers.CAT_CONVERSATION
    assert forget_conversation(helpers.CAT_CONVERSATION) == 2
    assert all(p.conversation_id is None for p in search(alice.id, "Mochi salmon cat allergy", k=20))


def test_indexing_a_message_again_replaces_its_passages(alice, corpus):
    index_message(alice.id, helpers.CAT_CONVERSATION, helpers.CAT_QUESTION, "user", "Mochi now eats duck.")
    texts = list(Chunk.objects.filter(message_id=helpers.CAT_QUESTION).values_list("text", flat=True))
    assert texts == ["Mochi now eats duck."]
    assert first(alice, "duck").message_id == helpers.CAT_QUESTION
    assert index_message(alice.id, helpers.CAT_CONVERSATION, helpers.CAT_QUESTION, "user", "  ") == 0
    assert not Chunk.objects.filter(message_id=helpers.CAT_QUESTION).exists()


def test_a_long_message_is_indexed_as_several_passages(alice):
    answer = " ".join(f"Step {n}: sand the deck board number {n} with 120 grit paper." for n in range(1, 41))
    count = index_message(alice.id, helpers.CAT_CONVERSATION, helpers.CAT_ANSWER, "assistant", answer)
    assert count == Chunk.objects.filter(message_id=helpers.CAT_ANSWER).count() >= 3
    assert "number 37" in first(alice, "deck board number 37").text


def test_message_text_that_no_database_could_store_is_cleaned(alice):
    index_message(
        alice.id, helpers.CAT_CONVERSATION, helpers.CAT_ANSWER, "assistant", "nul\x00byte \ud800 alone"
    )
    (text,) = Chunk.objects.filter(message_id=helpers.CAT_ANSWER).values_list("text", flat=True)
    assert "\x00" not in text and "\ud800" not in text
    assert text.startswith("nulbyte")


# ---- async callers ---------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_asearch_runs_on_the_knowledge_threads_for_async_callers(alice, corpus):
    passages = await asearch(alice.id, "sightseeing plans in Portugal", 3)
    assert passages[0].document_id == corpus.lisbon.id
    assert "Lisbon itinerary" in passages[0].text


def test_the_vectors_kept_between_searches_follow_replaced_passages(alice, corpus):
    assert vector_ranking(alice.id, "what should I give my pet to eat")  # the user's vectors are now kept
    index_message(
        alice.id,
        helpers.CAT_CONVERSATION,
        helpers.CAT_ANSWER,
        "assistant",
        "Volcanoes erupt when magma rises.",
    )  # same number of chunks, one replaced
    (new_chunk,) = Chunk.objects.filter(message_id=helpers.CAT_ANSWER).values_list("id", flat=True)
    assert vector_ranking(alice.id, "lava and eruptions")[0][0] == new_chunk
