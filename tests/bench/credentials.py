"""What the bench's requests carry: bearer tokens and a session cookie.

Header values are written one per line to files that requests.lua reads. A
`FixedValue` is one line sent on every request (the hot path, the session
cookie). A `FreshTokens` pool grows on demand so that a run never has to
send a token twice: minting RS256 tokens costs about a millisecond each, so
the pool holds only as many as the measured rates need, minted in parallel
between runs (never while wrk runs).
"""

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from harness import tokens
from harness.idp import default_client
from harness.login import login
from harness.oidc_app import html_session

TOKEN_LIFETIME_SECONDS = 3600
MINT_CHUNK = 2000


def bearer(token: str) -> str:
    return f"Bearer {token}"


def bench_token(key: tokens.SigningKey, issuer: str, audience: str, serial: int) -> str:
    """A valid token; `serial` (its jti) makes every token distinct, as RS256
    signatures are deterministic."""
    return tokens.sign({}, tokens.claims(issuer, TOKEN_LIFETIME_SECONDS, aud=audience, jti=f"bench-{serial}"), key)


@dataclass(frozen=True)
class FixedValue:
    """One header value repeated on every request."""

    path: Path

    @classmethod
    def write(cls, path: Path, value: str) -> "FixedValue":
        path.write_text(value + "\n")
        return cls(path)


class FreshTokens:
    """A growing file of distinct valid bearer tokens for one key."""

    def __init__(self, path: Path, key: tokens.SigningKey, issuer: str, audience: str, workers: int):
        self.path = path
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.workers = workers
        self.count = 0
        path.write_text("")

    def ensure(self, count: int) -> None:
        """Mint tokens until the file holds at least `count`."""
        missing = count - self.count
        if missing <= 0:
            return
        print(f"minting {missing:,} {self.key.alg} tokens", flush=True)
        chunks = [(self.count + start, min(MINT_CHUNK, missing - start)) for start in range(0, missing, MINT_CHUNK)]
        pem = self.key.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        jobs = [(pem, self.key.alg, self.key.kid, self.issuer, self.audience, first, size) for first, size in chunks]
        with ProcessPoolExecutor(max_workers=self.workers) as pool, self.path.open("a") as out:
            for lines in pool.map(_mint_chunk, jobs):
                out.write(lines)
        self.count += missing


def _mint_chunk(job: tuple) -> str:
    """Runs in a worker process: `size` header values starting at serial `first`."""
    pem, alg, kid, issuer, audience, first, size = job
    key = tokens.SigningKey(alg=alg, kid=kid, private_key=serialization.load_pem_private_key(pem, None))
    return "".join(bearer(bench_token(key, issuer, audience, serial)) + "\n" for serial in range(first, first + size))


def mint_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


# ----- browser sessions -----
def session_client(listener_url: str, client_id: str, alg: str):
    """An IdP client for one session listener, whose ID tokens are signed with `alg`."""
    return default_client(
        f"{listener_url}/oauth2/callback",
        client_id=client_id,
        client_secret=f"{client_id}-secret",
        extra={"id_token_signed_response_alg": alg},
    )


def session_cookie_by_login(listener_url: str, cookie_name: str = "oidc_session") -> str:
    """Log in once through the real IdP, as a browser would (harness.login),
    and return the Cookie header value that carries the filter's session."""
    session = html_session()
    result = login(session, f"{listener_url}/", "bench-user")
    if result.status != 200:
        raise RuntimeError(f"login ended with {result.status}:\n{result.describe()}")
    parts = [f"{c.name}={c.value}" for c in session.cookies if _is_session_cookie(c.name, cookie_name)]
    if not parts:
        raise RuntimeError(f"the login set no {cookie_name} cookie:\n{result.describe()}")
    return "; ".join(sorted(parts))


def _is_session_cookie(name: str, cookie_name: str) -> bool:
    """The session or one of its numbered chunks, not the login-in-progress cookie."""
    chunk = name.removeprefix(f"{cookie_name}_")
    return name == cookie_name or (chunk != name and chunk.isdigit())
