from __future__ import annotations

from dataclasses import dataclass

import pytest

from knowledge.index import add_document, index_message
from knowledge.models import Document
from tests.knowledge import helpers


@dataclass
class Corpus:
    sourdough: Document
    bicycle: Document
    invoices: Document
    houseplants: Document
    lisbon: Document


@pytest.fixture
def corpus(alice) -> Corpus:
    """Alice's knowledge: five documents on distinct topics (one a PDF) and one conversation."""
    docs = Corpus(
        sourdough=add_document(alice, "Sourdough.md", helpers.SOURDOUGH.encode()),
        bicycle=add_document(alice, "Bicycle maintenance.txt", helpers.BICYCLE.encode()),
        invoices=add_document(alice, "Invoices 2025.txt", helpers.INVOICES.encode()),
        houseplants=add_document(alice, "Houseplants.md", helpers.HOUSEPLANTS.encode()),
        lisbon=add_document(alice, "Lisbon.pdf", helpers.make_pdf(helpers.LISBON_PDF_LINES)),
    )
    index_message(alice.id, helpers.CAT_CONVERSATION, helpers.CAT_QUESTION, "user", helpers.CAT_QUESTION_TEXT)
    index_message(
        alice.id, helpers.CAT_CONVERSATION, helpers.CAT_ANSWER, "assistant", helpers.CAT_ANSWER_TEXT
    )
    return docs


@pytest.fixture
def bobs_copy(bob) -> Document:
    """Bob has a document with exactly the text of one of Alice's, and a conversation of his own."""
    document = add_document(bob, "Invoices 2025.txt", helpers.INVOICES.encode())
    index_message(
        bob.id,
        helpers.BOB_CONVERSATION,
        helpers.BOB_MESSAGE,
        "user",
        "Kestrel Logistics still owes me for invoice INV-20931, and my cat Mochi needs salmon.",
    )
    return document
