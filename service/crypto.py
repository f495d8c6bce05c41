"""Secrets: account credentials encrypted at rest, signed page tokens, API key hashes.

Everything derives from one secret (POSTS_SECRET_KEY, or on the embedded
default a key made once and kept under ``var/``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pathlib
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.config import Config, ConfigError


def load_secret(config: Config) -> bytes:
    """The configured secret; on the embedded default, made once and kept under var/."""
    if config.secret_key:
        if len(config.secret_key) < 32:
            raise ConfigError("POSTS_SECRET_KEY must be at least 32 characters")
        return config.secret_key.encode()
    path = pathlib.Path(config.var_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class Keyring:
    """Keys derived from the service's secret, one per purpose."""

    def __init__(self, secret: bytes):
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, b"credentials")))
        self._signing = _derive(secret, b"page-tokens")

    def encrypt(self, plaintext: str) -> str:
        """Encrypts account credentials for storage."""
        return self._fernet.encrypt(plaintext.encode()).decode() if plaintext else ""

    def decrypt(self, ciphertext: str) -> str:
        """Decrypts stored credentials; raises ValueError when they were not ours."""
        if not ciphertext:
            return ""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise ValueError("credentials cannot be decrypted with this POSTS_SECRET_KEY") from None

    def sign(self, payload: bytes) -> str:
        """``payload`` and its HMAC, URL-safe: an opaque token callers cannot forge."""
        mac = hmac.new(self._signing, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def verify(self, token: str) -> bytes | None:
        """The payload of a token made by ``sign``; None when it was tampered with."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            return None
        mac, payload = raw[:16], raw[16:]
        expected = hmac.new(self._signing, payload, hashlib.sha256).digest()[:16]
        return payload if len(raw) > 16 and hmac.compare_digest(mac, expected) else None


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest stored for an API key's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


_keyring: Keyring | None = None


def configure(config: Config) -> Keyring:
    """Makes the process's Keyring from ``config`` (at start-up, beside db.init)."""
    global _keyring
    _keyring = Keyring(load_secret(config))
    return _keyring


def keyring() -> Keyring:
    """The process's Keyring; raises ConfigError before ``configure``."""
    if _keyring is None:
        raise ConfigError("service.crypto.configure(config) was not called")
    return _keyring
