"""The knowledge benchmark must not rot: one small run of bench/knowledge.py on SQLite.

It asserts that the script runs and reports its numbers, nothing about how fast they are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_knowledge_benchmark_runs_and_reports():
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    result = subprocess.run(
        [sys.executable, "bench/knowledge.py", "--chunks", "20", "60"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model all-MiniLM-L6-v2-onnx-int8: load ")
    assert lines[1].startswith("embedding: query ")
    assert [line.split(" (")[0] for line in lines[3:]] == [
        "search over     20 chunks",
        "search over     60 chunks",
    ]
