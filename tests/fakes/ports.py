"""Ports for processes a test or the demo starts on 127.0.0.1.

A port is chosen before the process that binds it starts, so it must not
come from the kernel's ephemeral range: an outgoing connection started
meanwhile (a gateway's, an etcd member dialling its peers) could take it
as its local port, and the bind would then fail ("Address already in
use"). ``free_port`` draws below that range and never gives one port twice
in a process (a random draw can repeat where binding port 0 did not).
"""
from __future__ import annotations

import random
import socket
from pathlib import Path


def ephemeral_low() -> int:
    """The lowest port the kernel hands out on its own (outgoing
    connections, binds to port 0)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_given: set[int] = set()


def free_port() -> int:
    """A port free now, below the ephemeral range, not given before."""
    low = min(ephemeral_low(), 65536)
    if low > 12000:
        for _ in range(200):
            port = random.randrange(10000, low)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            if port not in _given:
                _given.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
