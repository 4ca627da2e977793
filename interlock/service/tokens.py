"""One token per role, each in a file only its owner can read, created at first start.

``<tokens>/operator.token``, ``script.token``, ``viewer.token``: whoever can
read a file may act in that role. The directory and every token file must
belong to the user the service (or the client) runs as, with no access for
group or others, and must not be symbolic links; otherwise they are refused
with a ConfigError naming the file, never used: a token file planted by
another user before the first start would be that user arming the bench,
and a leaked operator token is someone else arming it.
"""

from __future__ import annotations

import errno
import hmac
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from interlock.errors import ConfigError

log = logging.getLogger(__name__)

#: Roles, weakest first: each may do everything the ones before it may.
ROLES = ("viewer", "script", "operator")
# A token is 43 characters; anything much longer is not one of ours.
MAX_TOKEN_FILE = 1024


def rank(role: str) -> int:
    return ROLES.index(role)


def token_path(directory: Path, role: str) -> Path:
    return Path(directory) / f"{role}.token"


def _exposure(mode: int) -> str:
    if mode & 0o044:
        return "readable by others"
    if mode & 0o022:
        return "writable by others"
    return "open to others"


def _check_private(path: Path, status: os.stat_result, what: str, fix: str) -> None:
    """Refuse what another user owns, or what group or others may access."""
    euid = os.geteuid()
    if status.st_uid != euid:
        raise ConfigError(
            str(path),
            "",
            f"{what} belongs to uid {status.st_uid}, not to this user (uid {euid}): whoever "
            f"made it may hold the token; remove it{fix}",
        )
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise ConfigError(
            str(path),
            "",
            f"{what} is {_exposure(mode)} (mode {mode:04o}): "
            f"chmod {'700' if stat.S_ISDIR(status.st_mode) else '600'} it, or remove it{fix}",
        )


_REMAKE = " to have a new token made at the next start"


def check_directory(directory: Path) -> None:
    """ConfigError naming ``directory`` unless it is this user's own, owner-only directory."""
    try:
        status = os.lstat(directory)
    except FileNotFoundError as exc:
        raise ConfigError(
            str(directory),
            "",
            "no tokens directory: start the service once (interlock serve) to create it",
        ) from exc
    except OSError as exc:
        raise ConfigError(str(directory), "", f"cannot read the tokens directory: {exc}") from exc
    if stat.S_ISLNK(status.st_mode):
        raise ConfigError(
            str(directory), "", "the tokens directory is a symbolic link: give its real path"
        )
    if not stat.S_ISDIR(status.st_mode):
        raise ConfigError(str(directory), "", "the tokens directory is not a directory")
    _check_private(directory, status, "the tokens directory", "")


def read_token(directory: Path, role: str) -> str:
    """The token of ``role``; ConfigError naming the file if it is missing or not private."""
    if role not in ROLES:
        raise ConfigError(str(directory), "", f'unknown role "{role}" (roles: {", ".join(ROLES)})')
    check_directory(directory)
    path = token_path(directory, role)
    try:
        # O_NOFOLLOW: a symbolic link is refused, not followed to whatever it names;
        # O_NONBLOCK: a planted FIFO cannot hold us here.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ConfigError(
            str(path), "", "no token file: start the service once (interlock serve) to create it"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(
                str(path), "", f"token file is a symbolic link: remove it{_REMAKE}"
            ) from exc
        raise ConfigError(str(path), "", f"cannot read the {role} token: {exc}") from exc
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ConfigError(
                str(path), "", f"token file is not a regular file: remove it{_REMAKE}"
            )
        _check_private(path, status, "token file", _REMAKE)
        data = os.read(fd, MAX_TOKEN_FILE + 1)
    finally:
        os.close(fd)
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if not token or len(data) > MAX_TOKEN_FILE or not token.isprintable():
        raise ConfigError(str(path), "", f"token file holds no token: remove it{_REMAKE}")
    return token


class TokenStore:
    """The service's side: make missing tokens, load all, tell a token's role."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._tokens: dict[str, bytes] = {}

    def ensure(self) -> None:
        """Create the directory (owner-only) and any missing token, then load them all.

        Refuses (ConfigError naming the file) a directory or token file that is not
        this user's own and private: see the module's doc.
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_directory(self.directory)
        for role in ROLES:
            path = token_path(self.directory, role)
            try:
                # O_EXCL: never overwrite a token someone already holds (nor follow a link).
                fd = os.open(
                    path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
                )
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w", encoding="ascii") as file:
                    file.write(secrets.token_urlsafe(32) + "\n")
                log.info("created the %s token in %s", role, path)
            self._tokens[role] = read_token(self.directory, role).encode("ascii")

    def keep(self) -> list[str]:
        """The tokens directory, if it went (wiped with the service's directory, say),
        made again with the tokens this service holds: never new ones, so a client that
        read one before still has it. Returns the roles put back. A token file removed
        on its own is not put back: that is how a token is replaced (a new one is made
        at the next start). The directory made again is checked as at start."""
        if self.directory.exists() or self.directory.is_symlink():
            return []
        self.directory.mkdir(mode=0o700, parents=True)
        check_directory(self.directory)
        put_back = []
        for role, token in self._tokens.items():
            # Written whole under a name of its own, then linked into place: a client
            # never reads half a token, and nothing put there meanwhile is overwritten.
            fd, whole = tempfile.mkstemp(prefix=f".{role}.", dir=self.directory)
            try:
                with os.fdopen(fd, "w", encoding="ascii") as file:
                    file.write(token.decode("ascii") + "\n")
                os.link(whole, token_path(self.directory, role))
                put_back.append(role)
            except FileExistsError:
                continue
            finally:
                os.unlink(whole)
        return put_back

    def role_of(self, token: str | None) -> str | None:
        """The role ``token`` belongs to, or None; constant-time per comparison."""
        if not token:
            return None
        offered = token.encode("utf-8", "surrogatepass")
        found = None
        for role, known in self._tokens.items():
            if hmac.compare_digest(offered, known):
                found = role
        return found
