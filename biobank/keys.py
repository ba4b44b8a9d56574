"""The custody key: the secret that makes the ledger's digests unforgeable.

Every custody event's digest is an HMAC-SHA256 under the current key, and every checkpoint
is signed with it; the key never enters the database, so someone who can write the database
but lacks the key cannot make a single event or checkpoint that verifies. Each key is known
by an id (a fingerprint of the key itself) stored with what it signed, so that after a
rotation the events and checkpoints signed with a retired key still verify.

Keys come from the configuration (``CUSTODY_KEY``, the current one, and
``CUSTODY_RETIRED_KEYS``) or, when none is configured, from the instance folder
(``custody_key``, and one retired key per line in ``custody_keys_retired``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

KEY_FILE = "custody_key"
RETIRED_FILE = "custody_keys_retired"


def key_id(secret: bytes) -> str:
    """The public name of a key: 16 hex digits of a hash of it (it reveals nothing of it)."""
    return hashlib.sha256(b"biobank custody key id\x00" + secret).hexdigest()[:16]


@dataclass(frozen=True)
class Keyring:
    current_id: str
    keys: dict[str, bytes]

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]


def _split(value: object) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]
    return [str(part).strip() for part in value if str(part).strip()]  # type: ignore[attr-defined]


def _from_instance_folder() -> tuple[str, list[str]]:
    folder = Path(current_app.instance_path)
    path = folder / KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    retired = folder / RETIRED_FILE
    return path.read_text().strip(), _split(retired.read_text()) if retired.exists() else []


def keyring() -> Keyring:
    """The current key and every retired one, by id (cached per application)."""
    cached = current_app.extensions.get("custody_keyring")
    if cached is not None:
        return cached
    configured = current_app.config.get("CUSTODY_KEY")
    if configured:
        current, retired = configured, _split(current_app.config.get("CUSTODY_RETIRED_KEYS"))
    else:
        current, retired = _from_instance_folder()
    keys = {key_id(k.encode()): k.encode() for k in retired}
    current_id = key_id(current.encode())
    keys[current_id] = current.encode()
    ring = Keyring(current_id, keys)
    current_app.extensions["custody_keyring"] = ring
    return ring


def forget_keyring() -> None:
    current_app.extensions.pop("custody_keyring", None)


def rotate_key() -> tuple[str, str]:
    """Make a new current key in the instance folder; the old one is kept as retired, so
    what it signed still verifies. Returns (old id, new id)."""
    if current_app.config.get("CUSTODY_KEY"):
        raise RuntimeError(
            "the custody key is configured (CUSTODY_KEY): set the new key there "
            "and add the old one to CUSTODY_RETIRED_KEYS"
        )
    old, _retired = _from_instance_folder()
    folder = Path(current_app.instance_path)
    with (folder / RETIRED_FILE).open("a") as handle:
        handle.write(old + "\n")
    (folder / RETIRED_FILE).chmod(0o600)
    new = secrets.token_hex(32)
    path = folder / KEY_FILE
    temporary = path.with_suffix(".new")
    temporary.write_text(new)
    temporary.chmod(0o600)
    temporary.replace(path)
    forget_keyring()
    return key_id(old.encode()), key_id(new.encode())
