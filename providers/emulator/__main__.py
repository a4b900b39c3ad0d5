"""``python -m providers.emulator --host 127.0.0.1 --port 8765 [--fast] [--ttft-ms N --chunk-ms N --chunks N]``."""

from __future__ import annotations

import argparse

import uvicorn

from providers.emulator.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m providers.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--fast", action="store_true", help="test timing: ttft 20 ms, 3 ms between chunks")
    parser.add_argument("--ttft-ms", type=float, help="time to first token for every provider")
    parser.add_argument("--chunk-ms", type=float, help="time between chunks for every provider")
    parser.add_argument("--chunks", type=int, help="number of content chunks in every answer")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    app = create_app(fast=args.fast, ttft_ms=args.ttft_ms, chunk_ms=args.chunk_ms, chunks=args.chunks)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
