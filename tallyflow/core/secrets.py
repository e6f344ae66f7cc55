"""Secrets kept encrypted at rest (webhook endpoint secrets), with keys from a setting.

`TALLYFLOW_SECRET_KEY` holds one Fernet key (`cryptography`: AES-128-CBC + HMAC-SHA256,
authenticated), or several separated by commas to rotate: the first encrypts, every one
decrypts. A stored secret is a Fernet token; without the key it cannot be read, and a token
changed in the database does not decrypt (InvalidToken), it never signs with garbage.

Generate a key:
    python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tallyflow.core.errors import TallyflowError

KEY_SETTING = "TALLYFLOW_SECRET_KEY"
_GENERATE = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class SecretKeyError(TallyflowError):
    """The secret key is missing, malformed, or not the one the stored secrets were sealed
    with: a configuration error of the server (503 from the API, exit 2 from the CLI)."""

    code = "secret_key_missing"
    status = 503


class SecretBox:
    """Encrypts and decrypts short secrets with the configured Fernet key(s)."""

    def __init__(self, keys: Sequence[str]) -> None:
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise SecretKeyError(
                f"{KEY_SETTING} is not a Fernet key (32 url-safe base64-encoded bytes, or"
                f" several separated by commas); generate one with: {_GENERATE}",
                code="secret_key_invalid",
            ) from exc

    @classmethod
    def from_setting(cls, value: str | None) -> SecretBox:
        """The box of the setting's value; SecretKeyError when it is unset or malformed."""
        keys = [k for k in (value or "").split(",") if k.strip()]
        if not keys:
            raise SecretKeyError(
                f"{KEY_SETTING} is not set: webhook endpoint secrets are stored encrypted with"
                f" it; generate one with: {_GENERATE}"
            )
        return cls(keys)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        """The plaintext of a sealed secret; SecretKeyError when no configured key opens it."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError(
                f"{KEY_SETTING} does not decrypt the stored webhook secrets: it is not the key"
                " they were stored with (to rotate, list the new key first and the old one"
                " after it, separated by a comma)",
                code="secret_key_wrong",
            ) from exc
