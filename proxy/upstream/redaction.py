"""Keep configured upstream secrets out of everything an upstream can make us repeat.

An upstream may quote the key it was sent (``Incorrect API key provided:
sk-...``) in an error message, an error event inside a stream, or anywhere in
an answer. Everything the gateway relays or records from an upstream body
passes through :meth:`Redactor.scrub` first, so no configured secret reaches a
caller, a log line or a metric label, whatever the upstream sends back.

The secrets are every provider's API keys and the values of configured
upstream headers whose names say they carry a credential. Values shorter than
:data:`MIN_SECRET_LENGTH` are not treated as secrets (replacing them would
mangle ordinary text and protect nothing).
"""

from __future__ import annotations

from typing import Iterable, Mapping

REDACTED = b"[REDACTED]"
MIN_SECRET_LENGTH = 8
_CREDENTIAL_HINTS = ("authorization", "key", "token", "secret", "password", "cookie")


def is_credential_header(name: str) -> bool:
    """Whether a configured upstream header's name says its value is a credential."""
    lowered = name.lower()
    return any(hint in lowered for hint in _CREDENTIAL_HINTS)


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The values of ``headers`` that are credentials, with any ``Bearer`` scheme removed too."""
    found: list[str] = []
    for name, value in headers.items():
        if is_credential_header(name):
            found.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                found.append(token)
    return found


class Redactor:
    """Replaces every configured secret in upstream bytes with ``[REDACTED]``.

    The common case, bytes that hold no secret, costs one substring search
    per secret and copies nothing.
    """

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s.encode() for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted(unique, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def scrub(self, data: bytes) -> bytes:
        """``data`` with every secret replaced; ``data`` itself when it holds none."""
        for secret in self._secrets:
            if secret in data:
                data = data.replace(secret, REDACTED)
        return data

    def scrub_text(self, text: str) -> str:
        """:meth:`scrub` for text."""
        if not self._secrets:
            return text
        raw = text.encode("utf-8", "surrogatepass")
        scrubbed = self.scrub(raw)
        return text if scrubbed is raw else scrubbed.decode("utf-8", "replace")


NO_SECRETS = Redactor()
