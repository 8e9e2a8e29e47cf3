"""Sending one request, byte for byte the same, to two listeners and reading
their decisions: the machinery of the differential tests that set Envoy's own
RBAC (as Istio configures it) beside the filter."""

import http.client
import ssl
from dataclasses import dataclass

REQUEST_TIMEOUT = 10.0
# An Istio gateway behind one trusted proxy: `normalize_path` as Istio's default
# `BASE` path normalization, the client address from X-Forwarded-For.
ISTIO_GATEWAY_HCM = {"use_remote_address": True, "xff_num_trusted_hops": 1, "normalize_path": True}


@dataclass(frozen=True)
class Request:
    name: str
    path: str = "/"  # `{alice}` stands for the token `alice`
    method: str = "GET"
    host: str = "example.com"
    token: str | None = None  # a key of the tokens
    headers: tuple[tuple[str, str], ...] = ()  # in order; a name may repeat
    cert: str | None = None  # a key of the client certificates (TLS listeners only)
    sni: str | None = None  # the TLS server name to send (TLS listeners only)


def req(name: str, path: str = "/", *, headers: dict | None = None, **fields) -> Request:
    return Request(name, path, headers=tuple((headers or {}).items()), **fields)


class LoopbackHttps(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with `sni` as the TLS server name (none when None)."""

    def __init__(self, sni: str | None, port: int, **kwargs):
        super().__init__("127.0.0.1", port, **kwargs)
        self.sni = sni

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.sni)


@dataclass
class Client:
    """What a request needs besides itself: the tokens by name, and for TLS the
    CA file and the client certificates by name (`harness.certs.Pair`)."""

    tokens: dict[str, str]
    ca: str | None = None
    client_certs: dict | None = None


def send(client: Client, port: int, request: Request, tls: bool) -> int:
    """The status of `request` sent as written (Host and path verbatim)."""
    if tls:
        context = ssl.create_default_context(cafile=client.ca)
        context.check_hostname = False
        if request.cert is not None:
            pair = client.client_certs[request.cert]
            context.load_cert_chain(str(pair.cert), str(pair.key))
        connection = LoopbackHttps(request.sni, port, timeout=REQUEST_TIMEOUT, context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        path = request.path.format_map(client.tokens) if "{" in request.path else request.path
        connection.putrequest(request.method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", request.host)
        for name, value in request.headers:
            connection.putheader(name, value)
        if request.token is not None:
            connection.putheader("Authorization", f"Bearer {client.tokens[request.token]}")
        connection.putheader("Connection", "close")
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def decision(status: int) -> str:
    """Allowed (the echo upstream's 200) or denied (401 or 403, whichever: Istio
    answers 403 where the filter asks for a token with 401)."""
    if status == 200:
        return "allowed"
    if status in (401, 403):
        return "denied"
    return f"unexpected {status}"
