"""A loopback HTTP proxy that breaks requests on purpose, one fault per request.

Each request the client sends takes the next fault from the schedule (then
"ok" once it is used up). The proxy speaks just enough HTTP/1.1 to find the
end of a request and of a response (Content-Length), so a fault hits one
request, not a whole keep-alive connection.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable

FAULTS = ("ok", "drop", "delay", "reset", "truncate", "duplicate", "lost_reply", "restart")


def _read_message(sock: socket.socket, buf: bytearray) -> bytes | None:
    """One HTTP message (head + Content-Length body) from `sock`, or None at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head_end = buf.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buf[:head_end]).split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(buf) < head_end + length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    msg = bytes(buf[: head_end + length])
    del buf[: head_end + length]
    return msg


class FaultProxy:
    def __init__(self, upstream_port: int, *, restart: Callable[[], None] | None = None, delay_s: float = 0.05):
        self.upstream_port = upstream_port
        self.restart = restart
        self.delay_s = delay_s
        self.faults: deque[str] = deque()
        self.applied: list[str] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def schedule(self, faults: list[str]) -> None:
        with self._lock:
            self.faults = deque(faults)

    def _next(self) -> str:
        with self._lock:
            fault = self.faults.popleft() if self.faults else "ok"
            self.applied.append(fault)
            return fault

    def close(self) -> None:
        self._closed = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _forward(self, request: bytes) -> bytes | None:
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10) as up:
            up.sendall(request)
            return _read_message(up, bytearray())

    def _serve(self, client: socket.socket) -> None:
        buf = bytearray()
        try:
            while True:
                request = _read_message(client, buf)
                if request is None:
                    return
                fault = self._next()
                if fault == "drop":
                    return
                if fault == "reset":
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if fault == "delay":
                    time.sleep(self.delay_s)
                response = self._forward(request)
                if fault == "duplicate":
                    response = self._forward(request)
                if response is None:
                    return
                if fault == "lost_reply":
                    return
                if fault == "restart":
                    # the server committed this request, then went away before the reply left
                    if self.restart is not None:
                        self.restart()
                    return
                if fault == "truncate":
                    client.sendall(response[: max(1, len(response) // 2)])
                    return
                client.sendall(response)
        except OSError:
            return
        finally:
            client.close()
