"""TCP beyond loopback: TLS only, and a client that trusts only the server it was told to.

Certificates are made for the test (trustme: a CA of its own, and a server
certificate for this machine's addresses). The service listens on an
address of this machine that is not loopback when it has one, else on
127.0.0.1 (with TLS: a certificate makes TCP TLS on loopback too).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trustme

import interlock
from interlock.cli import main
from interlock.config import load_bench
from interlock.errors import ConfigError, InvalidRequest, ServiceUnavailable
from interlock.service.runtime import Service
from interlock.service.server import ServiceThread
from tests.service.conftest import ServeBench, assert_bench_safe, bring_up, write_bench


def _outside_address() -> str:
    """An address of this machine other than loopback, or 127.0.0.1 if it has none."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # nothing is sent: this only picks a route
        address = probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()
    return "127.0.0.1" if address.startswith("127.") or address == "0.0.0.0" else address


ADDRESS = _outside_address()


class Pki:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA()
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.certificate, self.key = self.issue("server", ADDRESS, "127.0.0.1", "localhost")
        stranger = trustme.CA()
        self.other_ca_file = directory / "other-ca.pem"
        stranger.cert_pem.write_to_path(str(self.other_ca_file))

    def issue(self, name: str, *hosts: str) -> tuple[Path, Path]:
        issued = self.ca.issue_cert(*hosts)
        certificate, key = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        issued.cert_chain_pems[0].write_to_path(str(certificate))
        issued.private_key_pem.write_to_path(str(key))
        os.chmod(key, 0o600)
        return certificate, key


@pytest.fixture
def pki(short_dir: Path) -> Pki:
    directory = short_dir / "pki"
    directory.mkdir()
    return Pki(directory)


@pytest.fixture
def tls_service(serve_bench: ServeBench, pki: Pki):
    served = serve_bench(tcp=(ADDRESS, 0), tls=(pki.certificate, pki.key))
    host, port = served.thread.tcp_address
    return served, f"https://{host}:{port}"


def test_tcp_beyond_loopback_without_tls_is_refused(short_dir, capsys):
    bench = write_bench(short_dir)
    assert main(["serve", "--bench", str(bench), "--tcp", "0.0.0.0:0"]) == 2
    err = capsys.readouterr().err
    assert "service.tls_certificate" in err and "in clear" in err
    assert not (short_dir / "interlock.sock").exists()  # nothing was bound, nothing opened


def test_plain_tcp_on_loopback_is_still_served_and_says_so(serve_bench):
    served = serve_bench(tcp=("127.0.0.1", 0))
    host, port = served.thread.tcp_address
    assert f"as http://{host}:{port} (plain HTTP: loopback only)" in " ".join(
        served.thread.addresses
    )
    client = served.client("viewer", address=f"http://{host}:{port}")
    assert client.status()["state"] == "safe"


def test_a_client_reaches_the_service_over_https_and_verifies_it(tls_service, pki):
    served, address = tls_service
    assert any(f"as {address}" in shown for shown in served.thread.addresses)
    operator = served.client("operator", address=address, ca=pki.ca_file)
    operator.arm()
    script = served.client("script", address=address, ca=pki.ca_file)
    with script.lease():
        bring_up(script)  # setpoints and outputs over HTTPS: the channel is local only
        assert script.measure("VLOGIC")["voltage"] == pytest.approx(5.0, abs=0.1)
        assert script.status()["nets"]["VLOGIC"]["output"] is True
        served.client("viewer", address=address, ca=pki.ca_file).estop()
    assert served.controller.state == "fault"
    assert_bench_safe(served.truth())


def test_a_client_refuses_a_server_it_does_not_trust(tls_service, pki):
    served, address = tls_service
    stranger = served.client("operator", address=address, ca=pki.other_ca_file)
    with pytest.raises(ServiceUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        stranger.arm()
    system = served.client("operator", address=address)  # the system's CAs do not know it
    with pytest.raises(ServiceUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        system.arm()
    assert served.controller.state == "safe"
    assert served.thread.gate.refusals.total == 0  # no request reached it: no token either


def test_a_client_refuses_a_certificate_for_another_host(serve_bench, pki):
    certificate, key = pki.issue("elsewhere", "bench-99.example")
    served = serve_bench(tcp=(ADDRESS, 0), tls=(certificate, key))
    host, port = served.thread.tcp_address
    client = served.client("viewer", address=f"https://{host}:{port}", ca=pki.ca_file)
    with pytest.raises(ServiceUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        client.status()


def test_the_tls_port_does_not_serve_plain_http(tls_service, pki):
    served, address = tls_service
    plain = address.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/status", headers={"Authorization": f"Bearer {served.token('viewer')}"})
    assert served.thread.gate.refusals.total == 0


@pytest.mark.parametrize(
    "address",
    ["http://192.0.2.2:8443", "http://0.0.0.0:8443", "ftp://127.0.0.1:1", "https://host",
     "https://127.0.0.1:8443/status", "127.0.0.1:8443"],
)  # fmt: skip
def test_a_client_refuses_an_address_it_must_not_use(served, address):
    with pytest.raises(InvalidRequest):
        interlock.connect(served.bench_path, role="viewer", address=address)


def test_tls_needs_both_files_each_a_readable_file(short_dir, pki):
    bench = write_bench(short_dir, tls=(pki.certificate, pki.key))
    text = bench.read_text()
    bench.write_text(text.replace(f'tls_key = "{pki.key}"\n', ""))
    with pytest.raises(ConfigError, match="missing") as refused:
        load_bench(bench)
    assert refused.value.key == "service.tls_key"
    bench.write_text(text.replace(str(pki.certificate), str(short_dir / "nowhere.pem")))
    with pytest.raises(ConfigError, match="not a file") as refused:
        load_bench(bench)
    assert refused.value.key == "service.tls_certificate"


def test_a_key_others_may_read_is_refused(short_dir, pki):
    os.chmod(pki.key, 0o644)
    bench = write_bench(short_dir, tls=(pki.certificate, pki.key))
    with pytest.raises(ConfigError, match="chmod 600") as refused:
        ServiceThread(Service(bench), tcp=(ADDRESS, 0)).start()
    assert refused.value.key == "service.tls_key"


def test_serve_over_tls_until_sigterm(short_dir, pki):
    """The command: its banner names the https address, a client is served, SIGTERM ends both
    servers (the Unix socket's and TCP's) and the bench is left safe."""
    bench = write_bench(short_dir, tls=(pki.certificate, pki.key))
    argv = ["serve", "--bench", str(bench), "--tcp", f"{ADDRESS}:0"]
    server = subprocess.Popen(
        [sys.executable, "-m", "interlock", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # the bench's banner
        serving = server.stdout.readline()
        address = re.search(r" as (https://\S+:\d+) ", serving)
        assert address, serving
        with interlock.connect(bench, role="viewer", address=address[1], ca=pki.ca_file) as client:
            assert client.status()["state"] == "safe"
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err
    assert "service stopped; the bench was driven to the safe state" in out.splitlines()
