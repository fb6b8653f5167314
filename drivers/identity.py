"""Signed card numbers: checked offline with Ed25519 public keys from config.

Format (docs/readers.md): ``NUMBER*KID*SIG``

* ``NUMBER``: the card number, any text ``ledger.cards`` accepts without ``*``;
* ``KID``: 8 upper-case hex digits, the first 4 bytes of SHA-256 over the raw
  32-byte public key, so a wrong key is told apart from a forged number;
* ``SIG``: the 64-byte Ed25519 signature in RFC 4648 base32, upper case, no
  padding (103 characters), over ``DOMAIN + NUMBER`` in UTF-8.

Upper-case letters, digits and ``*`` keep the whole text in QR alphanumeric
mode and in Code 128. A text holding ``*`` claims to be signed: if it does not
parse, it is invalid, never unsigned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from ledger.cards import CardIdError, normalize

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# cryptography is imported inside the functions that need it: every CLI command
# loads this module (for `card issue`), and the import costs ~70 ms.

from .readers.base import CardPresent

DOMAIN = b"pos-loyalty card number v1\n"
SEP = "*"
_KID = re.compile(r"^[0-9A-F]{8}$")
_SIG = re.compile(r"^[A-Z2-7]{103}$")

Policy = Literal["off", "warn", "require"]
POLICIES: tuple[Policy, ...] = ("off", "warn", "require")


class KeyFormatError(ValueError):
    """A public or private key that cannot be read."""


@dataclass(frozen=True, slots=True)
class Checked:
    number: str  # the card number, signature removed
    signature: Literal["none", "valid", "invalid"]
    reason: str = ""


def key_id(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:4].hex().upper()


def public_text(public: Ed25519PublicKey) -> str:
    """How a public key is written in config.toml: ``ed25519:`` + 64 hex digits."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + raw.hex()


def load_public(text: str) -> Ed25519PublicKey:
    """A public key from config: ``ed25519:<hex>``, bare hex, base64, or PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    value = text.strip()
    if value.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(value.encode())
        except ValueError as exc:
            raise KeyFormatError(f"unreadable PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFormatError("the PEM public key is not an Ed25519 key")
        return key
    value = value.removeprefix("ed25519:")
    raw = _decode_32(value)
    if raw is None:
        raise KeyFormatError(f"public key must be 32 bytes as hex or base64 (ed25519:<64 hex>), not {text[:20]!r}")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private(text: str) -> Ed25519PrivateKey:
    """A private key: PEM (PKCS#8), or the 32-byte seed as hex or base64."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    value = text.strip()
    if value.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(value.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError(f"unreadable PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFormatError("the PEM private key is not an Ed25519 key")
        return key
    raw = _decode_32(value.removeprefix("ed25519:"))
    if raw is None:
        raise KeyFormatError("private key must be PEM, or a 32-byte seed as hex or base64")
    return Ed25519PrivateKey.from_private_bytes(raw)


def new_private() -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _decode_32(value: str) -> bytes | None:
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return bytes.fromhex(value)
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def sign(number: str, key: Ed25519PrivateKey) -> str:
    """The signed text for `number` (what goes in the NDEF record or barcode)."""
    if SEP in number:
        raise ValueError(f"a card number cannot hold {SEP!r}")
    try:
        normalize("code:" + number)
    except CardIdError as exc:
        raise ValueError(str(exc)) from None
    if number != number.strip():
        raise ValueError("a card number cannot start or end with spaces")
    sig = key.sign(DOMAIN + number.encode())
    return f"{number}{SEP}{key_id(key.public_key())}{SEP}{_b32(sig)}"


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=")


def _unb32(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def split(text: str) -> tuple[str, bool]:
    """(the number, whether the text claims a signature); no key needed."""
    if SEP not in text:
        return text, False
    return text.split(SEP, 1)[0], True


class Verifier:
    """Checks signed numbers against the configured public keys."""

    def __init__(self, public_keys: Iterable[str] = ()):
        self.keys: dict[str, Ed25519PublicKey] = {}
        for text in public_keys:
            key = load_public(text)
            self.keys[key_id(key)] = key

    def check(self, text: str) -> Checked:
        number, claims = split(text)
        if not claims:
            return Checked(text, "none")
        parts = text.split(SEP)
        if len(parts) != 3:
            return Checked(number, "invalid", "signed number is malformed")
        number, kid, sig_text = parts
        if not _KID.match(kid) or not _SIG.match(sig_text):
            return Checked(number, "invalid", "signed number is truncated or malformed")
        key = self.keys.get(kid)
        if key is None:
            return Checked(number, "invalid", f"signed with unknown key {kid}")
        from cryptography.exceptions import InvalidSignature

        try:
            key.verify(_unb32(sig_text), DOMAIN + number.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            return Checked(number, "invalid", "signature does not match the number (forged or altered)")
        return Checked(number, "valid")


class SignaturePolicy:
    """Applies `require_signed` to a CardPresent made by a driver."""

    def __init__(self, policy: str = "off", public_keys: Iterable[str] = ()):
        if policy not in POLICIES:
            raise ValueError(f"require_signed must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.policy = policy
        self.verifier = Verifier(public_keys)
        if policy != "off" and not self.verifier.keys:
            raise ValueError(f"require_signed = {policy!r} needs at least one reader.public_keys entry")

    def apply(self, event: CardPresent) -> CardPresent:
        if self.policy == "off" and not self.verifier.keys:
            return event
        checked = Checked("", "none") if not event.raw else self.verifier.check(event.raw)
        signature = checked.signature
        warnings = list(event.warnings)
        if self.policy == "off":
            return replace(event, signature=signature)
        if signature == "valid":
            return replace(event, signature=signature)
        reason = checked.reason or "card number is not signed"
        if self.policy == "require":
            warnings.append(f"refused: {reason}")
            return replace(event, signature=signature, warnings=tuple(warnings), refused=True)
        warnings.append(reason)
        return replace(event, signature=signature, warnings=tuple(warnings))
