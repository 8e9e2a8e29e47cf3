"""A TCP relay that can be switched off, to cut Envoy off from a real IdP.

Envoy's IdP cluster points at the relay; the browser (the test) still reaches
the IdP directly, as it would across the internet. `switch_off()` closes the
listening socket (new connections are refused) and resets the live ones;
`switch_on()` listens again on the same port. The IdP keeps running, so its
sessions, grants and keys survive the outage. `delay_seconds` holds what Envoy
sends on each new connection that long, so its calls stay in flight.
"""

import socket
import struct
import threading
import time

from .ports import free_port

BUFFER = 65536


class TcpProxy:
    def __init__(self, target_port: int, port: int | None = None):
        self.target_port = target_port
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self.delay_seconds = 0.0

    def start(self) -> "TcpProxy":
        self.switch_on()
        return self

    def stop(self) -> None:
        self.switch_off()

    def switch_on(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def switch_off(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            live, self._sockets = self._sockets, set()
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() frees the port.
            _quietly(lambda: listener.shutdown(socket.SHUT_RDWR))
            listener.close()
        for sock in live:
            _reset(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # switched off
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _reset(client)
                    _reset(upstream)
                    return
                self._sockets.update((client, upstream))
            both_done = threading.Barrier(2, action=lambda: self._forget(client, upstream))
            delay = self.delay_seconds
            threading.Thread(target=self._pump, args=(client, upstream, both_done, delay), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, both_done), daemon=True).start()

    def _pump(
        self, source: socket.socket, destination: socket.socket, both_done: threading.Barrier, delay: float = 0.0,
    ) -> None:
        time.sleep(delay)
        try:
            while data := source.recv(BUFFER):
                destination.sendall(data)
            destination.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # reset by switch_off() or by a peer
        try:
            both_done.wait(timeout=60)
        except threading.BrokenBarrierError:
            self._forget(source, destination)

    def _forget(self, *sockets: socket.socket) -> None:
        """Both directions ended: close the pair."""
        with self._lock:
            self._sockets.difference_update(sockets)
        for sock in sockets:
            _quietly(sock.close)


def _reset(sock: socket.socket) -> None:
    """Close with a RST, as a vanished host's connection ends."""
    _quietly(lambda: sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)))
    _quietly(sock.close)


def _quietly(action) -> None:
    try:
        action()
    except OSError:
        pass
