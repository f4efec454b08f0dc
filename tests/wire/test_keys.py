"""Key files and signers: round trips, wrong files and unsupported keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from flexheg.errors import InputError
from flexheg.wire import PublicKey, SigningKey, load_public_key, load_signing_key, write_key_pair


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[SigningKey, Path, Path]:
    key = SigningKey.generate()
    private, public = write_key_pair(key, tmp_path / "keys" / "bloc-a")
    return key, private, public


def test_key_pair_round_trip(key_files: tuple[SigningKey, Path, Path]) -> None:
    key, private, public = key_files
    loaded = load_signing_key(private)
    assert loaded.keyid == key.keyid
    assert load_public_key(public) == key.public
    signature = loaded.sign(b"message")
    assert key.public.verify(signature, b"message")
    assert not key.public.verify(signature, b"other message")


def test_private_key_file_mode(key_files: tuple[SigningKey, Path, Path]) -> None:
    _, private, _ = key_files
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_existing_key_not_overwritten(key_files: tuple[SigningKey, Path, Path]) -> None:
    _, private, _ = key_files
    before = private.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        write_key_pair(SigningKey.generate(), private.with_name("bloc-a"))
    assert private.read_bytes() == before


def test_public_file_as_private_names_fix(key_files: tuple[SigningKey, Path, Path]) -> None:
    _, _, public = key_files
    with pytest.raises(InputError) as exc:
        load_signing_key(public)
    assert str(public) in str(exc.value)
    assert "not the .pub.json file" in str(exc.value)


def test_private_file_as_public_names_fix(key_files: tuple[SigningKey, Path, Path]) -> None:
    _, private, _ = key_files
    with pytest.raises(InputError) as exc:
        load_public_key(private)
    assert str(private) in str(exc.value)
    assert "pass the matching .pub.json file" in str(exc.value)


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"\x00\xff" * 40, b"-----BEGIN PRIVATE KEY-----\nAAAA\n"]
)
def test_garbage_private_key_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    with pytest.raises(InputError, match=str(path)):
        load_signing_key(path)


@pytest.mark.parametrize("content", [b"", b"garbage", b"{}", b'{"keyid": "x"}', b"\xff"])
def test_garbage_public_key_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key.pub.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=str(path)):
        load_public_key(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read private key"):
        load_signing_key(tmp_path / "absent.pem")
    with pytest.raises(InputError, match="cannot read public key"):
        load_public_key(tmp_path / "absent.pub.json")


def test_non_ed25519_private_key_rejected(tmp_path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "ecdsa.pem"
    path.write_bytes(pem)
    with pytest.raises(InputError, match="only Ed25519"):
        load_signing_key(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keytype": "rsa", "scheme": "rsassa-pss-sha256"}, "not supported"),
        ({"keyval": {"public": "ab"}}, "64 lowercase hex"),
        ({"keyval": {"public": "A" * 64}}, "64 lowercase hex"),
        ({"keyval": {"public": "a" * 64, "private": "b" * 64}}, "unknown field"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_public_key_dict_checks(change: dict[str, object], message: str) -> None:
    document = {**SigningKey.generate().public.to_dict(), **change}
    with pytest.raises(InputError, match=message):
        PublicKey.from_dict(json.loads(json.dumps(document)), where="key")


def test_signature_of_other_key_fails() -> None:
    first, second = SigningKey.generate(), SigningKey.generate()
    assert not second.public.verify(first.sign(b"m"), b"m")
    assert not first.public.verify("zz", b"m")
