"""The files clients find a running service by, removed under it (its directory wiped,
``rm -rf run/``): put back while it runs the bench.

Without them nothing reaches the service any more, the emergency stop from a shell
included (it needs the command channel's socket and a token file), while the service
goes on running the bench. Real services on a simulated bench; the files are removed
with plain ``os`` calls, as ``rm`` would.
"""

from __future__ import annotations

import os
import shutil
import time

import httpx

from interlock.cli import main
from interlock.service.background import answers
from interlock.service.server import KEEP_PERIOD_S
from interlock.service.tokens import ROLES, token_path
from interlock.service.wire import channel_path
from tests.service.conftest import Served, assert_bench_safe, bring_up
from tests.waiting import until


def http_status(served: Served) -> dict:
    transport = httpx.HTTPTransport(uds=str(served.service.settings.socket))
    headers = {"Authorization": f"Bearer {served.token('viewer')}"}
    with httpx.Client(transport=transport, base_url="http://interlock", headers=headers) as http:
        response = http.get("/status", timeout=10)
    response.raise_for_status()
    return response.json()


def test_sockets_and_tokens_removed_are_put_back_and_anyone_can_still_stop(served, capsys):
    settings = served.service.settings
    tokens = {role: token_path(settings.tokens, role).read_text() for role in ROLES}
    operator, script = served.client("operator"), served.client("script")
    with script.lease():
        operator.arm()
        bring_up(script)
        sockets = [settings.socket, channel_path(settings.socket)]
        for sock in sockets:
            os.unlink(sock)
        shutil.rmtree(settings.tokens)
        # Put back within a few of the service's rounds (margin for a loaded machine).
        assert until(
            lambda: (
                all(answers(p) for p in sockets)
                and all(token_path(settings.tokens, r).exists() for r in ROLES)
            ),
            40 * KEEP_PERIOD_S,
        )
        assert served.controller.state == "live"  # nothing of the bench changed meanwhile
        # The same tokens: a client that read one before still has it.
        assert {role: token_path(settings.tokens, role).read_text() for role in ROLES} == tokens
        assert oct(settings.tokens.stat().st_mode & 0o777) == oct(0o700)
        for role in ROLES:
            assert oct(token_path(settings.tokens, role).stat().st_mode & 0o777) == oct(0o600)
        assert http_status(served)["state"] == "live"  # the HTTP API on its socket again
        code = main(["estop", "--bench", str(served.bench_path)])  # a viewer: anyone may stop
        out, _ = capsys.readouterr()
    assert code == 0, out
    assert "emergency stop done" in out
    assert served.controller.state == "fault"
    assert_bench_safe(served.truth())


def test_a_file_another_process_put_in_a_sockets_place_is_left_alone(served):
    channel = channel_path(served.service.settings.socket)
    planted = channel.with_name("planted")
    planted.write_text("not the service's\n")
    os.replace(planted, channel)  # in one step: no round of the keeper between
    time.sleep(4 * KEEP_PERIOD_S)  # rounds of the keeper, which must leave it
    assert channel.read_text() == "not the service's\n"
    assert http_status(served)["state"] == "safe"  # the service serves on
    served.stop()
    assert channel.read_text() == "not the service's\n"  # nor does its close remove it


def test_everything_the_service_made_removed_while_live(served, capsys):
    """The journal too: the bench trips (the journal cannot have been written), every file
    comes back, and the stop and the record are whole."""
    settings = served.service.settings
    operator, script = served.client("operator"), served.client("script")
    with script.lease():
        operator.arm()
        bring_up(script)
        for path in served.directory.iterdir():
            if path.name == "bench.toml":
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        assert until(lambda: served.controller.state == "fault", 10)
        assert until(
            lambda: (
                answers(channel_path(settings.socket))
                and token_path(settings.tokens, "viewer").exists()
            ),
            40 * KEEP_PERIOD_S,
        )
    assert_bench_safe(served.truth())
    capsys.readouterr()
    assert main(["status", "--bench", str(served.bench_path)]) == 0
    out, _ = capsys.readouterr()
    assert "journal.sqlite was removed" in out
    served.stop()
    assert main(["journal", "verify", "--journal", str(settings.journal)]) == 0
    out, _ = capsys.readouterr()
    assert "chain OK" in out


def test_a_token_file_removed_on_its_own_is_not_put_back(serve_bench):
    """That is how a token is replaced: removed, a new one is made at the next start."""
    served = serve_bench()
    tokens = served.service.settings.tokens
    old = token_path(tokens, "operator").read_text()
    token_path(tokens, "operator").unlink()
    time.sleep(4 * KEEP_PERIOD_S)  # rounds of the keeper, which must not write it again
    assert not token_path(tokens, "operator").exists()
    served.stop()
    serve_bench()
    assert token_path(tokens, "operator").read_text() not in ("", old)
