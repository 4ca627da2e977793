"""The client library's async face against a real service: the sync face's operations, awaited."""

from __future__ import annotations

import asyncio
import math

import pytest

import interlock
from interlock.client import transport_reason
from interlock.client._common import http_call
from interlock.config import load_bench
from interlock.errors import InvalidRequest, LimitViolation, ServiceUnavailable, StateError
from interlock.journal import JournalReader
from interlock.service.schema import ARM, MEASURE, SET_VOLTAGE
from tests.service.conftest import Served, assert_bench_safe, write_bench


def _run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_both_faces_build_one_request_from_one_definition():
    call = http_call(SET_VOLTAGE, {"net": "V/1", "volts": math.nan})
    assert (call.method, call.path, call.content) == (
        "PUT",
        "/nets/V%2F1/voltage",
        '{"volts": NaN}',
    )
    assert http_call(MEASURE, {"net": "VBUS"}).path == "/nets/VBUS/measurement"
    assert http_call(ARM, {"confirm": None}).content == '{"confirm": null}'
    assert SET_VOLTAGE.channel_request({"net": "VBUS", "volts": 1.5}) == {
        "op": "set_voltage",
        "net": "VBUS",
        "volts": 1.5,
    }


def test_a_script_drives_a_net_with_the_lease_and_refusals_come_back_whole(served: Served):
    async def scenario() -> tuple[dict, dict, dict]:
        async with interlock.connect_async(served.bench_path, role="operator") as operator:
            armed = await operator.arm()
            async with (
                interlock.connect_async(served.bench_path, role="script", who="ada") as script,
                script.lease() as lease,
            ):
                assert lease.id and script.lease_lost is None
                await script.set_current_limit("VLOGIC", 0.3)
                await script.set_voltage("VLOGIC", 5.0)
                await script.output_on("VLOGIC")
                measured = await script.measure("VLOGIC")
                with pytest.raises(LimitViolation) as refused:
                    await script.set_voltage("VLOGIC", 6.0)
                assert refused.value.rule == "nets.VLOGIC.max_voltage"
                with pytest.raises(LimitViolation, match="must be a finite number"):
                    await script.set_voltage("VLOGIC", math.inf)
                with pytest.raises(InvalidRequest, match="expected a plain number of volts"):
                    await script.set_voltage("VLOGIC", "5 V")  # type: ignore[arg-type]
                live = await script.status()
                await script.output_off("VLOGIC")
                await script.set_relay("K1", False)
            return armed, measured, live

    armed, measured, live = _run(scenario())
    assert armed["state"] == "armed"  # an operator action answers with the status after it
    assert measured["voltage"] == pytest.approx(5.0, abs=0.05)
    assert live["nets"]["VLOGIC"]["output"] is True
    assert live["lease"]["who"] == "ada"
    assert served.service.leases.holder() is None  # released on leaving the block
    assert_bench_safe(served.truth())


def test_the_event_stream_and_the_stop(served: Served):
    async def scenario() -> list[dict]:
        async with interlock.connect_async(served.bench_path, role="viewer") as viewer:
            seen = []
            async for event in viewer.events(period=0.1):
                seen.append(event)
                if len(seen) == 1:
                    assert (await viewer.estop())["state"] == "fault"  # any role may stop
                if event["event"] == "fault":
                    return seen
        raise AssertionError("the stream ended")

    seen = _run(scenario())
    assert seen[0]["event"] == "status" and seen[0]["state"] == "safe"
    assert seen[-1]["cause"] == "estop"


def test_a_viewer_may_not_arm_and_a_disarmed_bench_refuses_setpoints(served: Served):
    async def scenario() -> None:
        async with interlock.connect_async(served.bench_path, role="viewer") as viewer:
            with pytest.raises(interlock.AccessDenied):
                await viewer.arm()
        async with interlock.connect_async(served.bench_path, role="script") as script:
            with pytest.raises(StateError):
                await script.set_voltage("VLOGIC", 1.0)

    _run(scenario())


def test_the_same_refusal_is_journaled_alike_through_either_face(served: Served):
    served.client("operator").arm()
    with pytest.raises(LimitViolation):
        served.client("script", who="sync").set_voltage("VBUS", 30.0)

    async def refused() -> None:
        async with interlock.connect_async(served.bench_path, who="async") as script:
            with pytest.raises(LimitViolation):
                await script.set_voltage("VBUS", 30.0)

    _run(refused())
    served.service.journal.flush()
    with JournalReader(served.service.settings.journal) as reader:
        entries = list(reader.entries())
    requests = {e.actor: e.payload for e in entries if e.kind == "request" and e.actor != "cli"}
    verdicts = {e.payload.get("request"): e.payload for e in entries if e.kind == "verdict"}
    sync, async_ = requests["sync"], requests["async"]
    assert {k: v for k, v in sync.items() if k != "client"} == {
        k: v for k, v in async_.items() if k != "client"
    }
    seqs = [e.seq for e in entries if e.kind == "request" and e.actor in ("sync", "async")]
    assert verdicts[seqs[0]] | {"request": 0} == verdicts[seqs[1]] | {"request": 0}


def test_no_service_is_service_unavailable_and_said_plainly(short_dir):
    bench = write_bench(short_dir)

    async def scenario() -> ServiceUnavailable:
        client = interlock.AsyncClient(load_bench(bench), role="viewer", token="any")
        try:
            with pytest.raises(ServiceUnavailable) as raised:
                await client.status()
        finally:
            await client.aclose()
        return raised.value

    error = _run(scenario())
    assert transport_reason(error) == "no service answers on the socket"
    assert str(error).startswith("service of bench sim-bench-01 on ")


def test_the_async_face_asks_a_change_and_its_measurement_at_once(served: Served):
    async def scenario() -> dict:
        async with interlock.connect_async(served.bench_path, role="operator") as operator:
            await operator.arm()
            async with (
                interlock.connect_async(served.bench_path, role="script") as script,
                script.lease(),
            ):
                await script.set_current_limit("VLOGIC", 0.3)
                await script.set_voltage("VLOGIC", 5.0)
                await script.output_on("VLOGIC")
                measured = await script.set_voltage("VLOGIC", 4.5, measure=True)
                assert await script.set_voltage("VLOGIC", 4.6) is None
                await script.output_off("VLOGIC")
                await script.set_relay("K1", False)
                return measured

    measured = _run(scenario())
    assert measured["voltage"] == pytest.approx(4.5, abs=0.05)
