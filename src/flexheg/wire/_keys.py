"""Keys and signers, on top of securesystemslib.

Private keys are PKCS#8 PEM files; public keys are securesystemslib key dictionaries in JSON
(``keytype``, ``scheme``, ``keyval``) with their ``keyid``. Ed25519 is the default scheme; the
format leaves room for the other schemes that securesystemslib supports.

NOTE: the emulator keeps private keys in plain files on the host. A real guarantee processor or
approver HSM never exposes them; the emulator models the protocols, not the key storage.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, Key, Signature, SSlibKey  # type: ignore[attr-defined]

from flexheg.errors import InputError
from flexheg.wire._canonical import loads_strict
from flexheg.wire._fields import Fields


@dataclass(frozen=True)
class PublicKey:
    """A public key with its key id, as written into agreements and certificates."""

    keyid: str
    key: Key

    @classmethod
    def from_dict(cls, value: object, *, where: str) -> PublicKey:
        fields = Fields(value, where)
        keyid = fields.str("keyid")
        keytype = fields.str("keytype")
        scheme = fields.str("scheme")
        keyval = fields.object("keyval")
        public = keyval.str("public")
        keyval.done()
        fields.done()
        try:
            key = SSlibKey(keyid, keytype, scheme, {"public": public})
        except (ValueError, TypeError) as exc:
            raise InputError(f"{where}: not a usable public key: {exc}") from exc
        if keytype != "ed25519" or scheme != "ed25519":
            raise InputError(f"{where}: key type {keytype}/{scheme} is not supported; use ed25519")
        if len(public) != 64 or not all(c in "0123456789abcdef" for c in public):
            raise InputError(f"{where}.keyval.public: expected 64 lowercase hex digits")
        return cls(keyid, key)

    def to_dict(self) -> dict[str, Any]:
        return {"keyid": self.keyid, **self.key.to_dict()}

    def verify(self, signature_hex: str, data: bytes) -> bool:
        """Return True if ``signature_hex`` is a valid signature of ``data`` by this key."""
        try:
            self.key.verify_signature(Signature(self.keyid, signature_hex), data)
        except Exception:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A private signing key with its public half."""

    signer: CryptoSigner
    public: PublicKey

    @classmethod
    def generate(cls) -> SigningKey:
        signer = CryptoSigner.generate_ed25519()
        return cls(signer, PublicKey(signer.public_key.keyid, signer.public_key))

    @classmethod
    def from_private_bytes(cls, pem: bytes, *, what: str) -> SigningKey:
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"{what}: not an unencrypted PEM private key ({exc}); "
                "pass the .pem file written by 'flexheg key generate', not the .pub.json file"
            ) from None
        if not isinstance(private, Ed25519PrivateKey):
            raise InputError(f"{what}: only Ed25519 private keys are supported")
        signer = CryptoSigner(private)
        return cls(signer, PublicKey(signer.public_key.keyid, signer.public_key))

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def sign(self, data: bytes) -> str:
        """Sign ``data`` and return the signature as lowercase hex."""
        signature: str = self.signer.sign(data).signature
        return signature

    def private_pem(self) -> bytes:
        private = self.signer._private_key
        pem: bytes = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return pem


def write_key_pair(key: SigningKey, stem: Path) -> tuple[Path, Path]:
    """Write ``STEM.pem`` (private, mode 0600) and ``STEM.pub.json``. Return both paths."""
    private_path = stem.with_name(stem.name + ".pem")
    public_path = stem.with_name(stem.name + ".pub.json")
    for path in (private_path, public_path):
        if path.exists():
            raise InputError(f"{path}: already exists; choose another name or delete it first")
    stem.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_pem())
    public_path.write_text(json.dumps(key.public.to_dict(), indent=2) + "\n", encoding="utf-8")
    return private_path, public_path


def load_signing_key(path: Path) -> SigningKey:
    """Load a private key file written by :func:`write_key_pair`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read private key: {exc.strerror}") from None
    return SigningKey.from_private_bytes(data, what=str(path))


def load_public_key(path: Path) -> PublicKey:
    """Load a public key file (``*.pub.json``) written by :func:`write_key_pair`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read public key: {exc.strerror}") from None
    if data.startswith(b"-----BEGIN"):
        raise InputError(f"{path}: this is a PEM private key; pass the matching .pub.json file")
    return PublicKey.from_dict(loads_strict(data, what=str(path)), where=str(path))
