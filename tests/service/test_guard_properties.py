"""The request guard, alone, over the whole input space (hypothesis).

Whatever the headers and the body (any token, any Content-Length text, any
chunking): without a valid token nothing is received and the application
is never called; with one, at most MAX_BODY bytes (plus the one chunk that
crossed it) are received, a body over the bound never reaches the
application, and one within it reaches it whole and unchanged.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.service.access import Gatekeeper
from interlock.service.guard import MAX_BODY, RequestGuard
from interlock.service.refusals import RefusalLog
from interlock.service.tokens import TokenStore, read_token


@pytest.fixture(scope="module")
def gate(tmp_path_factory) -> Gatekeeper:
    tokens = TokenStore(Path(tmp_path_factory.mktemp("tokens")) / "tokens")
    tokens.ensure()
    gate = Gatekeeper(tokens, RefusalLog(lambda: None, interval=3600))
    yield gate
    gate.refusals._stopping.set()  # counts only: there is no journal here


header_text = st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
lengths = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=2 * MAX_BODY).map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    header_text,
)
chunkings = st.lists(st.binary(max_size=3 * MAX_BODY // 2), max_size=6)


def _run(gate: Gatekeeper, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> dict:
    """One request through the guard: what it received, what reached the app, what it sent."""
    seen: dict[str, Any] = {"received": 0, "received_bytes": 0, "app": None, "sent": []}
    queue = list(chunks) or [b""]

    async def receive() -> dict[str, Any]:
        seen["received"] += 1
        if not queue:
            return {"type": "http.disconnect"}
        chunk = queue.pop(0)
        seen["received_bytes"] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

    async def send(message: dict[str, Any]) -> None:
        seen["sent"].append(message)

    async def app(scope: Any, app_receive: Any, app_send: Any) -> None:
        message = await app_receive()
        seen["app"] = message["body"]
        await app_send({"type": "http.response.start", "status": 200, "headers": []})
        await app_send({"type": "http.response.body", "body": b"{}"})

    scope = {"type": "http", "method": "PUT", "path": "/nets/VBUS/voltage", "headers": headers,
             "client": None}  # fmt: skip
    asyncio.run(RequestGuard(app, gate)(scope, receive, send))
    return seen


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    credential=st.one_of(st.none(), st.sampled_from(["viewer", "script", "operator"]), header_text),
    scheme=st.sampled_from(["Bearer ", "bearer ", "Basic ", "", "Bearer  "]),
    length=lengths,
    chunks=chunkings,
    extra=st.lists(st.tuples(header_text, header_text), max_size=4),
)
def test_no_token_no_read_and_never_more_than_the_bound(gate, credential, scheme, length, chunks,
                                                        extra):  # fmt: skip
    directory = gate.tokens.directory
    valid = credential in ("viewer", "script", "operator") and scheme.strip().lower() == "bearer"
    token = read_token(directory, credential) if valid else credential
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra
               if k.lower() not in ("authorization", "content-length")]  # fmt: skip
    if token is not None:
        headers.append((b"authorization", f"{scheme}{token}".encode("latin-1")))
    if length is not None:
        headers.append((b"content-length", length.encode("latin-1")))
    seen = _run(gate, headers, chunks)
    status = seen["sent"][0]["status"] if seen["sent"] else None
    if not valid:
        assert (seen["received"], seen["app"], status) == (0, None, 401)
        assert json.loads(seen["sent"][1]["body"])["error"] == "AccessDenied"
        return
    body = b"".join(chunks)
    try:
        declared = int(length) if length is not None else None
    except ValueError:
        assert (seen["received"], seen["app"], status) == (0, None, 400)
        return
    if declared is not None and declared > MAX_BODY:
        assert (seen["received"], seen["app"], status) == (0, None, 413)
    elif len(body) > MAX_BODY:
        assert (seen["app"], status) == (None, 413)
        assert seen["received_bytes"] <= MAX_BODY + max(len(c) for c in chunks)
    else:
        assert (seen["app"], status) == (body, 200)
    if status in (400, 408, 413):
        assert (b"connection", b"close") in seen["sent"][0]["headers"]
