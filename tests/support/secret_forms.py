"""How the secrets corpus makes its secrets: random-looking values in each issuer's shape
(seeded, so every run plants the same ones), PEM blocks, JWTs, and the :class:`Form`
that carries a secret inside the text it appears in. The corpus itself is
:mod:`tests.support.secrets_corpus`.
"""

from __future__ import annotations

import base64
import random
import string
from dataclasses import dataclass

__all__ = [
    "ALNUM",
    "Form",
    "alnum",
    "b64",
    "form",
    "hexs",
    "jwt",
    "lower",
    "pem",
    "pick",
    "rng",
    "word",
]

rng = random.Random(8)
ALNUM = string.ascii_letters + string.digits


def pick(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def alnum(n: int) -> str:
    """Random letters and digits with at least one of each (as every issued token has)."""
    while True:
        s = pick(ALNUM, n)
        if (
            any(c.isdigit() for c in s)
            and any(c.isupper() for c in s)
            and any(c.islower() for c in s)
        ):
            return s


def hexs(n: int) -> str:
    return pick("0123456789abcdef", n)


def lower(n: int) -> str:
    return pick(string.ascii_lowercase + string.digits, n)


def b64(nbytes: int) -> str:
    return base64.b64encode(rng.randbytes(nbytes)).decode()


def word() -> str:
    """A password someone typed: letters, digits, a symbol."""
    return "Cn" + alnum(10) + "!x"


@dataclass(frozen=True)
class Form:
    name: str
    text: str
    secret: str
    keep: tuple[str, ...] = ()
    strong: bool = True

    @property
    def tail(self) -> str:
        """The secret's last characters: gone too, or only a prefix was masked."""
        return self.secret[-10:]


def form(name: str, template: str, secret: str, *keep: str, strong: bool = True) -> Form:
    return Form(name, template.replace("{s}", secret), secret, keep, strong)


def pem(kind: str, body: str, end: bool = True, nl: str = "\n") -> str:
    lines = nl.join(body[i : i + 64] for i in range(0, len(body), 64))
    tail = f"{nl}-----END {kind}-----" if end else ""
    return f"-----BEGIN {kind}-----{nl}{lines}{tail}"


def jwt() -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"' + alnum(20).encode() + b'"}')
    body = base64.urlsafe_b64encode(
        b'{"iss":"kubernetes/serviceaccount","sub":"system:serviceaccount:shop:api-'
        + alnum(12).encode()
        + b'"}'
    )
    return f"{head.decode().rstrip('=')}.{body.decode().rstrip('=')}.{alnum(43)}"
