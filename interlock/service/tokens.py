"""One token per role, each in a file only its owner can read, created at first start.

``<tokens>/operator.token``, ``script.token``, ``viewer.token``: whoever can
read a file may act in that role. A token file that others can read is
refused rather than used: a leaked operator token is someone else arming
the bench.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from interlock.errors import ConfigError

log = logging.getLogger(__name__)

#: Roles, weakest first: each may do everything the ones before it may.
ROLES = ("viewer", "script", "operator")


def rank(role: str) -> int:
    return ROLES.index(role)


def token_path(directory: Path, role: str) -> Path:
    return Path(directory) / f"{role}.token"


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            str(path),
            "",
            f"token file is readable by others (mode {mode:04o}): chmod 600 it, or delete it "
            "to have a new token made at the next start",
        )


def read_token(directory: Path, role: str) -> str:
    """The token of ``role``; ConfigError naming the file if it is missing or not private."""
    if role not in ROLES:
        raise ConfigError(str(directory), "", f'unknown role "{role}" (roles: {", ".join(ROLES)})')
    path = token_path(directory, role)
    try:
        _check_private(path)
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise ConfigError(
            str(path), "", "no token file: start the service once (interlock serve) to create it"
        ) from exc
    except PermissionError as exc:
        raise ConfigError(str(path), "", f"cannot read the {role} token: {exc}") from exc
    if not token:
        raise ConfigError(str(path), "", "token file is empty")
    return token


class TokenStore:
    """The service's side: make missing tokens, load all, tell a token's role."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._tokens: dict[str, str] = {}

    def ensure(self) -> None:
        """Create the directory (owner-only) and any missing token, then load them all."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for role in ROLES:
            path = token_path(self.directory, role)
            try:
                # O_EXCL: never overwrite a token someone already holds.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w", encoding="ascii") as file:
                    file.write(secrets.token_urlsafe(32) + "\n")
                log.info("created the %s token in %s", role, path)
            self._tokens[role] = read_token(self.directory, role)

    def role_of(self, token: str | None) -> str | None:
        """The role ``token`` belongs to, or None; constant-time per comparison."""
        if not token:
            return None
        found = None
        for role, known in self._tokens.items():
            if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), known.encode("ascii")):
                found = role
        return found
