"""A WebSocket client for tests: simple_websocket's, without its handshake bug.

``simple_websocket.Client.handshake()`` (1.1.0) reads until wsproto yields the
``AcceptConnection`` event and stops there. Frames that arrived in the same
read as the ``101`` are left parsed-but-unread inside wsproto; the reader thread
then blocks in ``sock.recv`` and only hands them out once more bytes arrive (the
next event, or the server's ping 25 s later). See docs/reliability.md.
"""

from __future__ import annotations

import simple_websocket


class Client(simple_websocket.Client):
    """``simple_websocket.Client`` that also delivers the frames read with the handshake."""

    def handshake(self) -> None:
        super().handshake()
        # the reader thread has not started yet: drain what wsproto already holds
        self.connected = self._handle_events()


def connect(url: str, headers: dict[str, str] | None = None) -> Client:
    """A connected client for *url* (``ws://``), with extra request *headers*."""
    return Client.connect(url, headers=headers)
