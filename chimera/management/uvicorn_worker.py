"""One uvicorn worker of ``manage.py web``, serving on a listening socket it inherits (``--fd``).

``uvicorn --fd`` takes every inherited socket for a Unix one, so a TCP socket shared by several
workers cannot be passed that way; this runs uvicorn's own ``Server`` on the socket as it is: uvloop,
httptools, the sans-I/O websockets protocol (the settings the bench measured, docs/PERFORMANCE.md
"ASGI servers"), no lifespan (Channels' router has none), proxy headers from the trusted addresses
(``FORWARDED_ALLOW_IPS``, uvicorn's default 127.0.0.1). SIGTERM and SIGINT stop it gracefully: no new
connections, open streams finish (the supervisor kills what is left after its grace period).
"""

from __future__ import annotations

import argparse
import socket


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chimera.management.uvicorn_worker")
    parser.add_argument("--fd", type=int, required=True, help="the listening socket's file descriptor")
    parser.add_argument("app", help="the ASGI application, module:attribute")
    args = parser.parse_args(argv)

    import uvicorn

    config = uvicorn.Config(
        args.app,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        lifespan="off",
        proxy_headers=True,
        log_level="info",
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=args.fd)])


if __name__ == "__main__":
    main()
