"""The service's TCP listener: what every accepted connection inherits from it."""

from __future__ import annotations

import asyncio
import socket

import pytest

from interlock.errors import ConfigError
from interlock.service.tcp import listen_tcp


async def _nodelay_of_an_accepted_connection(host: str) -> int:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    # As uvicorn serves it: asyncio's server on the socket listen_tcp made.
    server = await asyncio.start_server(on_connection, sock=listen_tcp(host, 0))
    async with server:
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_accepted_connections_send_small_replies_at_once(host):
    """TCP_NODELAY on every accepted connection: without it Nagle's algorithm holds a
    reply's last segment for the client's delayed ACK, about 40 ms per request on a
    kept-alive connection. asyncio sets it only on sockets made with IPPROTO_TCP."""
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        nodelay = asyncio.run(_nodelay_of_an_accepted_connection(host))
    except (OSError, ConfigError) as error:  # ::1 not configured
        pytest.skip(f"cannot listen on {host}: {error}")
    assert nodelay != 0
