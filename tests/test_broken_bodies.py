"""A body broken in transit is the client's error: 4xx JSON, never a 500."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_serve import TOKEN, Server, server_env

BROKEN_CHUNKS = {
    "chunk size not hex": b"zz\r\n{}\r\n0\r\n\r\n",
    "chunk longer than said": b"2\r\n{\"text\": \"hi\"}\r\n0\r\n\r\n",
}


@pytest.fixture
def server(repo: Path, tmp_path: Path) -> Iterator[Server]:
    running = Server(repo, tmp_path, "--threads", "8", env=server_env())
    yield running
    running.kill()


@pytest.mark.parametrize("name", sorted(BROKEN_CHUNKS))
def test_a_broken_chunked_body_is_a_4xx(server: Server, name: str) -> None:
    request = (b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + BROKEN_CHUNKS[name])
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = sock.makefile("rb").read()
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, f"{name}: {answer[:300]!r}"
