from __future__ import annotations

import itertools

from knowledge.chunking import MAX_CHARS, MIN_CHARS, split_into_chunks


def paragraph(n: int, sentences: int = 6) -> str:
    return " ".join(
        f"Paragraph {n} sentence {i} says something worth reading here." for i in range(sentences)
    )


def test_blank_text_has_no_chunks():
    assert split_into_chunks("") == []
    assert split_into_chunks(" \n\n\t\n") == []


def test_a_short_text_is_one_chunk():
    assert split_into_chunks("  One line.\r\nAnother line.  ") == ["One line.\nAnother line."]


def test_chunks_stay_within_the_size_and_end_at_paragraphs_when_long_enough():
    text = "\n\n".join(paragraph(n) for n in range(12))
    chunks = split_into_chunks(text)
    assert len(chunks) > 3
    assert all(len(c) <= MAX_CHARS for c in chunks)
    assert all(len(c) >= MIN_CHARS for c in chunks[:-1])
    # Every sentence survives, in order.
    assert all(f"Paragraph {n} sentence 5" in "".join(chunks) for n in range(12))
    # Two paragraphs of ~360 characters make a chunk that breaks between paragraphs.
    assert chunks[0].endswith("Paragraph 1 sentence 5 says something worth reading here.")


def test_a_long_paragraph_is_cut_at_sentences_with_a_little_overlap():
    chunks = split_into_chunks(paragraph(0, sentences=40))
    assert len(chunks) >= 3
    assert all(len(c) <= MAX_CHARS for c in chunks)
    for before, after in itertools.pairwise(chunks):
        last_sentence = before.rsplit(". ", 1)[-1]
        assert after.startswith(last_sentence)


def test_a_sentence_without_end_is_cut_at_spaces_and_a_huge_word_anyway():
    words = split_into_chunks("word " * 500)
    assert all(len(c) <= MAX_CHARS for c in words)
    assert "".join(words).replace(" ", "") == "word" * 500
    blob = split_into_chunks("x" * 2000)
    assert [len(c) for c in blob] == [800, 800, 400]


def test_markdown_lines_keep_their_line_breaks():
    chunks = split_into_chunks("# Title\n\n- one\n- two\n\n```\ncode\n```")
    assert chunks == ["# Title\n\n- one\n- two\n\n```\ncode\n```"]
