"""A flaky link on loopback: a TCP proxy between the stack's processes and the broker that resets and stalls.

`reset()` ends every open connection with a TCP RST (SO_LINGER 0), as a broken NAT or a restarted
load balancer would; `stall(True)` keeps the connections open but forwards nothing, in either
direction, until `stall(False)`: the peers see silence, and only their heartbeats or timeouts notice.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading


class FlakyProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: dict[socket.socket, socket.socket] = {}
        self.stalled = False
        self.resets = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="flaky-proxy", daemon=True)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        self.reset()
        self.listener.close()

    def stall(self, on: bool) -> None:
        self.stalled = on

    def reset(self) -> int:
        with self.lock:
            sockets = list(self.pairs)
            self.pairs.clear()
        for sock in sockets:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            except OSError:
                pass
        self.resets += len(sockets) // 2
        return len(sockets) // 2

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        registered: set[socket.socket] = set()
        while not self.stopping:
            with self.lock:
                live = set(self.pairs)
            for sock in registered - live:
                try:
                    selector.unregister(sock)
                except (KeyError, ValueError, OSError):
                    pass
            registered &= live
            if not self.stalled:
                for sock in live - registered:
                    try:
                        selector.register(sock, selectors.EVENT_READ)
                        registered.add(sock)
                    except (ValueError, OSError):
                        pass
            else:
                for sock in registered:
                    try:
                        selector.unregister(sock)
                    except (KeyError, ValueError, OSError):
                        pass
                registered = set()
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                if sock is self.listener:
                    self._accept()
                    continue
                self._forward(sock)

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self.lock:
            self.pairs[client] = upstream
            self.pairs[upstream] = client

    def _forward(self, sock: socket.socket) -> None:
        with self.lock:
            peer = self.pairs.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        with self.lock:
            self.pairs.pop(sock, None)
            self.pairs.pop(peer, None)
        for s in (sock, peer):
            try:
                s.close()
            except OSError:
                pass
