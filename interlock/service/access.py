"""Who is calling, and may they do this?

The role comes from the bearer token alone (see :mod:`.tokens`); the
``X-Interlock-User`` and ``X-Interlock-Client`` headers only say who and
which program, for the journal. A request without a valid token, or from a
role below the one the route needs, is refused: 401 without a valid token,
403 for a role that may not. Refusals are counted and journaled in
aggregate (:mod:`.refusals`), never one durable write each.

With ``[service] reservations = "labgrid"`` an operation a script or an
operator changes the bench with is accepted only from the holder of the
bench's labgrid place (:mod:`.reservations`), refused otherwise with 403
and counted under the rule ``reservations.labgrid``; the decision reads what
the coordinator last pushed, no I/O.

The token is checked from the headers, before any byte of the body is read
(:mod:`.guard`); each route's least role is declared once, by its
:class:`Access` dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from interlock.errors import InvalidArgument
from interlock.service.refusals import RefusalLog, RefusalSource
from interlock.service.reservations import RULE, ReservationRefused, Reservations
from interlock.service.schema import CLIENT_HEADER, USER_HEADER
from interlock.service.tokens import ROLES, TokenStore, rank
from interlock.service.wire import AccessDenied

#: The peer of a Unix socket connection (owner-only sockets: this user or root).
UNIX_PEER = "unix socket"

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
    text = "".join(c if c.isprintable() else "?" for c in text[:400]).strip()
    return text[:100] or default


def identity_of(role: str | None, user: str | None, client: str | None) -> Identity:
    """Who is calling: the role from the token, the rest as the client says."""
    return Identity(
        role=role or "none",
        who=_clean(user, "unknown"),
        client=f"{role or 'no role'} " + _clean(client, "unnamed client"),
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class Gatekeeper:
    """Tells a token's role and refuses who may not; shared by HTTP and the command channel.

    Does no I/O: a refusal is counted (:class:`~.refusals.RefusalLog`) and raised.
    ``reservations`` gives the service's :class:`~.reservations.Reservations`, or None
    while there are none.
    """

    def __init__(
        self,
        tokens: TokenStore,
        refusals: RefusalLog,
        reservations: Callable[[], Reservations | None] = lambda: None,
    ) -> None:
        self.tokens = tokens
        self.refusals = refusals
        self.reservations = reservations

    def authorize(
        self,
        token: str | None,
        user: str | None,
        client: str | None,
        needs: str,
        *,
        peer: str,
        operation: str | None = None,
        **where: str,
    ) -> Identity:
        """The caller's :class:`Identity`, if the role of ``token`` may do what needs ``needs``
        (and, with reservations, if the caller may do ``operation`` on the place).

        ``where`` (the HTTP method and path, or the channel and its operation)
        goes into the journal with a refusal.
        """
        role = self.tokens.role_of(token)
        identity = identity_of(role, user, client)
        if role is None:
            reason = "no token" if not token else "invalid token"
            self._refused(identity, reason, peer, where)
            raise AccessDenied(f"{reason}: send a role's token as 'Authorization: Bearer TOKEN'")
        self.require_role(identity, needs, peer=peer, operation=operation, **where)
        return identity

    def require_role(
        self,
        identity: Identity,
        needs: str,
        *,
        peer: str,
        operation: str | None = None,
        **where: str,
    ) -> None:
        """Refuse (counted, AccessDenied) a role below ``needs``, or, with reservations, one
        not holding the place. The command channel names its operation ``op``."""
        if rank(identity.role) < rank(needs):
            reason = f"the {identity.role} role may not do this (needs {needs})"
            self._refused(identity, reason, peer, where)
            raise AccessDenied(reason, role=identity.role, needs=needs)
        reservations = self.reservations()
        if reservations is None:
            return
        decision = reservations.gate.decide(
            identity.role, identity.who, operation or where.get("op")
        )
        if not decision.allowed:
            self._refused(identity, decision.reason, peer, where, rule=RULE)
            raise ReservationRefused(decision.reason, role=identity.role, holder=decision.holder)

    def _refused(
        self,
        identity: Identity,
        reason: str,
        peer: str,
        where: dict[str, str],
        *,
        rule: str = "access",
    ) -> None:
        source = RefusalSource(identity.role, identity.who, identity.client, peer)
        self.refusals.record(source, reason, rule=rule, **where)


def peer_of(scope: dict[str, Any]) -> str:
    """The peer of an ASGI connection as a refusal's source: its address, not its port."""
    client = scope.get("client")
    return str(client[0]) if client and client[0] else UNIX_PEER


class Access:
    """A route dependency: the caller's :class:`Identity`, if its role may use the route."""

    def __init__(self, needs: str, operation: str | None = None) -> None:
        if needs not in ROLES:
            raise InvalidArgument(f"unknown role {needs!r}")
        self.needs = needs
        self.operation = operation

    # Async, so the check runs on the event loop: an emergency stop must not wait
    # for a worker thread to be scheduled. It does no I/O.
    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Identity:
        gate: Gatekeeper = request.app.state.gate
        return gate.authorize(
            credentials.credentials if credentials is not None else None,
            request.headers.get(USER_HEADER),
            request.headers.get(CLIENT_HEADER),
            self.needs,
            peer=peer_of(request.scope),
            operation=self.operation,
            method=request.method,
            path=request.url.path[:200],
        )
