"""Who is calling, and may they do this?

The role comes from the bearer token alone (see :mod:`.tokens`); the
``X-Interlock-User`` and ``X-Interlock-Client`` headers only say who and
which program, for the journal. A request without a valid token, or from a
role below the one the route needs, is journaled and refused: 401 without
a valid token, 403 for a role that may not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from interlock.service.tokens import ROLES, rank
from interlock.service.wire import AccessDenied

USER_HEADER = "X-Interlock-User"
CLIENT_HEADER = "X-Interlock-Client"
LEASE_HEADER = "X-Interlock-Lease"

bearer = HTTPBearer(
    auto_error=False,
    description="The token of a role (viewer, script, operator), from the bench's tokens "
    "directory (e.g. run/tokens/script.token).",
)


@dataclass(frozen=True)
class Identity:
    role: str
    who: str  # the person or account, as the client says
    client: str  # the role and the program, as the client says

    def public(self) -> dict[str, str]:
        return {"role": self.role, "who": self.who, "client": self.client}


def _clean(text: str | None, default: str) -> str:
    """Header text fit for the journal: printable, bounded."""
    if not text:
        return default
    text = "".join(c if c.isprintable() else "?" for c in text).strip()
    return text[:100] or default


def identity_of(role: str | None, user: str | None, client: str | None) -> Identity:
    """Who is calling: the role from the token, the rest as the client says."""
    return Identity(
        role=role or "none",
        who=_clean(user, "unknown"),
        client=f"{role or 'no role'} " + _clean(client, "unnamed client"),
    )


def authorize(
    service, token: str | None, user: str | None, client: str | None, needs: str, **where: str
) -> Identity:
    """The caller's :class:`Identity`, if the role of ``token`` may do what needs ``needs``.

    Shared by the HTTP routes and the command channel. ``where`` (the HTTP
    method and path, or the channel and its operation) goes into the journal
    with a refusal. Does no I/O but on a refusal.
    """
    role = service.tokens.role_of(token)
    identity = identity_of(role, user, client)
    if role is None:
        reason = "no token" if not token else "invalid token"
        journal_refusal(service, identity, reason, **where)
        raise AccessDenied(f"{reason}: send a role's token as 'Authorization: Bearer TOKEN'")
    require_role(service, identity, needs, **where)
    return identity


def require_role(service, identity: Identity, needs: str, **where: str) -> None:
    """Refuse (journaled, AccessDenied) a role below ``needs``."""
    if rank(identity.role) < rank(needs):
        reason = f"the {identity.role} role may not do this (needs {needs})"
        journal_refusal(service, identity, reason, **where)
        raise AccessDenied(reason, role=identity.role, needs=needs)


def journal_refusal(service, identity: Identity, reason: str, **where: str) -> None:
    journal = service.journal
    entry = journal.request(identity.who, identity.client, "access", **where)
    journal.verdict(False, request=entry.seq, rule="access", where="service", reason=reason)


class Access:
    """A route dependency: the caller's :class:`Identity`, if its role may use the route."""

    def __init__(self, needs: str) -> None:
        if needs not in ROLES:
            raise ValueError(f"unknown role {needs!r}")
        self.needs = needs

    # Async, so the check runs on the event loop: an emergency stop must not wait
    # for a worker thread to be scheduled. It does no I/O but on a refusal.
    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Identity:
        return authorize(
            request.app.state.service,
            credentials.credentials if credentials is not None else None,
            request.headers.get(USER_HEADER),
            request.headers.get(CLIENT_HEADER),
            self.needs,
            method=request.method,
            path=request.url.path[:200],
        )
