"""Secrets: account credentials encrypted at rest, signed page tokens, API key hashes.

Everything derives from the service's secret keys: POSTS_SECRET_KEY (one or
more, comma-separated: the first encrypts and signs, every one decrypts and
verifies, so a key can be replaced without downtime), or on the embedded
default one key made once and kept in ``var/secret.key``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pathlib
import re
import tempfile
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.config import Config, ConfigError, secret_keys

KEY_FILE = "secret.key"

#: What the key file held before it held a Fernet key (``secrets.token_urlsafe(48)``):
#: still accepted, or the credentials stored under it could no longer be read.
_LEGACY_KEY = re.compile(rb"[A-Za-z0-9_-]{64}")


def load_secrets(config: Config) -> list[bytes]:
    """The configured secret keys, the one that encrypts first; on the embedded
    default, the key file's one key (made on first start)."""
    if config.secret_key:
        return [key.encode() for key in secret_keys(config.secret_key)]
    path = pathlib.Path(config.var_dir) / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return [read_key_file(path)]


def _create_key_file(path: pathlib.Path) -> None:
    """Writes a new Fernet key to ``path`` unless another process got there first.

    The key is written whole and synced under a temporary name, then linked into
    place: nobody ever reads a partial key, and a link (unlike a rename) never
    replaces a key another process published meanwhile, so both use that one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return
        # The new name must survive a crash too, not only the bytes.
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        os.unlink(temporary)


def read_key_file(path: pathlib.Path) -> bytes:
    """The key in ``path``; ConfigError when the file is unreadable, empty or malformed."""
    lose = "or remove it to make a new key (credentials stored under the old one are then lost)"
    try:
        key = path.read_bytes().strip()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the secret key: {error.strerror}") from None
    if not key:
        raise ConfigError(f"{path} is empty: restore it from a backup, {lose}")
    try:
        Fernet(key)
    except ValueError:
        if not _LEGACY_KEY.fullmatch(key):
            raise ConfigError(
                f"{path} does not hold a valid key (a Fernet key: 44 characters of URL-safe"
                f" base64): restore it from a backup, {lose}"
            ) from None
    return key


_UNREADABLE = "credentials cannot be decrypted with any POSTS_SECRET_KEY"
_CHECKED = b"posts.v1 secret key check"


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class Keyring:
    """Keys derived from the service's secret keys, one per purpose and secret.

    The first secret's keys encrypt and sign; every secret's keys decrypt and
    verify, so credentials and page tokens made under an older key still work.
    """

    def __init__(self, secrets: Sequence[bytes]):
        if not secrets:
            raise ConfigError("no secret key configured")
        self._fernet = MultiFernet(
            [Fernet(base64.urlsafe_b64encode(_derive(s, b"credentials"))) for s in secrets]
        )
        self._signing = [_derive(s, b"page-tokens") for s in secrets]
        self._checking = [_derive(s, b"key-check") for s in secrets]

    def checks(self) -> list[str]:
        """Each secret's key check, in order: what the database keeps to know
        its keys (models.SecretKeyCheck). Derived for this purpose alone, it
        tells nothing of the secret nor of the other derived keys."""
        return [hmac.new(key, _CHECKED, hashlib.sha256).hexdigest() for key in self._checking]

    def encrypt(self, plaintext: str) -> str:
        """Encrypts account credentials for storage, under the first key."""
        return self._fernet.encrypt(plaintext.encode()).decode() if plaintext else ""

    def decrypt(self, ciphertext: str) -> str:
        """Decrypts stored credentials; raises ValueError when no key opens them."""
        if not ciphertext:
            return ""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise ValueError(_UNREADABLE) from None

    def rotate(self, ciphertext: str) -> str:
        """``ciphertext`` encrypted again under the first key; ValueError when no key opens it."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise ValueError(_UNREADABLE) from None

    def sign(self, payload: bytes) -> str:
        """``payload`` and its HMAC, URL-safe: an opaque token callers cannot forge."""
        mac = hmac.new(self._signing[0], payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def verify(self, token: str) -> bytes | None:
        """The payload of a token made by ``sign`` under any of the keys; None when
        it was tampered with."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) <= 16:
            return None
        mac, payload = raw[:16], raw[16:]
        for key in self._signing:
            expected = hmac.new(key, payload, hashlib.sha256).digest()[:16]
            if hmac.compare_digest(mac, expected):
                return payload
        return None


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest stored for an API key's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


_keyring: Keyring | None = None


def configure(config: Config) -> Keyring:
    """Makes the process's Keyring from ``config`` (at start-up, beside db.init)."""
    global _keyring
    _keyring = Keyring(load_secrets(config))
    return _keyring


def keyring() -> Keyring:
    """The process's Keyring; raises ConfigError before ``configure``."""
    if _keyring is None:
        raise ConfigError("service.crypto.configure(config) was not called")
    return _keyring
