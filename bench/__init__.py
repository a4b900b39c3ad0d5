"""Benchmarks: how much latency and CPU Chimera adds to a streamed answer (``make bench``)."""
