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


def caller(request: Request, role: str | None) -> Identity:
    return Identity(
        role=role or "none",
        who=_clean(request.headers.get(USER_HEADER), "unknown"),
        client=f"{role or 'no role'} "
        + _clean(request.headers.get(CLIENT_HEADER), "unnamed client"),
    )


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
        service = request.app.state.service
        token = credentials.credentials if credentials is not None else None
        role = service.tokens.role_of(token)
        identity = caller(request, role)
        if role is None:
            reason = "no token" if not token else "invalid token"
            self._journal_refusal(service, request, identity, reason)
            raise AccessDenied(f"{reason}: send a role's token as 'Authorization: Bearer TOKEN'")
        if rank(role) < rank(self.needs):
            reason = f"the {role} role may not do this (needs {self.needs})"
            self._journal_refusal(service, request, identity, reason)
            raise AccessDenied(reason, role=role, needs=self.needs)
        return identity

    @staticmethod
    def _journal_refusal(service, request: Request, identity: Identity, reason: str) -> None:
        journal = service.journal
        entry = journal.request(
            identity.who,
            identity.client,
            "access",
            method=request.method,
            path=request.url.path[:200],
        )
        journal.verdict(False, request=entry.seq, rule="access", where="service", reason=reason)
