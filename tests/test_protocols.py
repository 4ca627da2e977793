"""The drivers the controller builds offer every method of the protocol it types them by."""

from __future__ import annotations

from interlock.drivers.relay_board import RelayBoard
from interlock.drivers.scpi_dmm import ScpiMultimeter
from interlock.drivers.scpi_psu import ScpiPowerSupply
from interlock.drivers.visa import VisaTransport
from interlock.protocols import Meter, PowerSupply, RelayBank


def test_drivers_implement_their_protocols(tmp_path):
    from interlock.journal import Journal

    with Journal(tmp_path / "j.sqlite", bench="b") as journal:
        transport = VisaTransport("x", "TCPIP::127.0.0.1::1::SOCKET", timeout=0.1)
        assert isinstance(ScpiPowerSupply("psu", transport, journal), PowerSupply)
        assert isinstance(ScpiMultimeter("dmm", transport, journal), Meter)
        assert not isinstance(ScpiMultimeter("dmm", transport, journal), PowerSupply)
    assert isinstance(RelayBoard("/dev/null"), RelayBank)
