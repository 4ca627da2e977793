"""A lab on loopback: a labgrid coordinator, two simulated interlock benches, an exporter.

Every process runs in a session of its own, on free ports (port 0, the real
port read back from what the process prints), and is stopped by its pid;
readiness is each program's own line, never a sleep:

- coordinator: ``labgrid-coordinator -l 127.0.0.1:0`` prints ``listening on
  127.0.0.1:PORT``; it writes places.yaml into its working directory, the lab's.
- bench: ``interlock serve --tcp 127.0.0.1:0`` (TLS, from a test CA;
  ``[service] reservations = "labgrid"`` on this coordinator) prints ``as
  https://127.0.0.1:PORT``; it starts its simulator and its guardian, and
  ``interlock stop --sim`` ends all three.
- exporter: ``interlock-labgrid-exporter`` prints ``Exporter ready`` once its
  resources are on the coordinator.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import trustme
import yaml

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
LEASE_TIMEOUT = 1.0
# The power set of the environment: VBUS goes on at 4 V and ramps (its largest step).
POWER_NETS = {
    "VLOGIC": {"voltage": "5 V", "current_limit": "250 mA"},
    "VBUS": {"voltage": "24 V", "current_limit": "300 mA", "start": "4 V"},
}


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{self.text()}")
            time.sleep(0.02)
        raise TimeoutError(f"{self.name}: no {pattern!r} within {timeout} s:\n{self.text()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


@dataclass
class Bench:
    name: str
    path: Path
    service: Proc | None = None
    address: str = ""


@dataclass
class Lab:
    directory: Path
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)
    benches: dict[str, Bench] = field(default_factory=dict)
    coordinator: str = ""
    ca_file: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def spawn(self, name: str, argv: list[str], cwd: Path | None = None) -> Proc:
        log = self.directory / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=cwd or self.directory,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def user(self, who: str, **extra: str) -> dict[str, str]:
        """The environment of a labgrid user ``host/user``."""
        host, _, user = who.partition("/")
        return {**self.env, "LG_HOSTNAME": host, "LG_USERNAME": user, **extra}

    def lg(
        self, env: dict[str, str], *args: str, check: bool = False
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "labgrid-client"), *args],
            env=env,
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"labgrid-client {args}: {result.stdout}\n{result.stderr}")
        return result

    def interlock(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "interlock"), *args],
            env=self.env,
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=120,
        )

    # -- the parts -----------------------------------------------------------------------

    def start_coordinator(self) -> None:
        proc = self.spawn("coordinator", [str(BIN / "labgrid-coordinator"), "-l", "127.0.0.1:0"])
        port = proc.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1)
        self.coordinator = f"127.0.0.1:{port}"
        self.env["LG_COORDINATOR"] = self.coordinator

    def add_bench(self, name: str, ca: trustme.CA) -> Bench:
        directory = self.directory / name
        directory.mkdir()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        issued.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
        issued.private_key_pem.write_to_path(str(directory / "key.pem"))
        os.chmod(directory / "key.pem", 0o600)
        text = (ROOT / "bench.toml").read_text()
        text = text.replace('profile = "profiles/', f'profile = "{ROOT}/profiles/')
        for key, value in (
            ("socket", "s/i.sock"),
            ("journal", "journal.sqlite"),
            ("lease_timeout", f"{LEASE_TIMEOUT:g} s"),
        ):
            text, count = re.subn(rf'(?m)^{key} = "[^"]*"', f'{key} = "{value}"', text)
            assert count == 1, key
        text = re.sub(r'(?m)^name = "[^"]*"', f'name = "{name}"', text, count=1)
        text = text.replace(
            'io_timeout = "1 s"',
            'io_timeout = "1 s"\ntls_certificate = "cert.pem"\ntls_key = "key.pem"\n'
            f'reservations = "labgrid"\ncoordinator = "{self.coordinator}"\nplace = "{name}"',
            1,
        )
        path = directory / "bench.toml"
        path.write_text(text)
        bench = self.benches[name] = Bench(name, path)
        return bench

    def start_bench(self, bench: Bench) -> None:
        bench.service = self.spawn(
            f"service-{bench.name}",
            [str(BIN / "interlock"), "serve", "--bench", str(bench.path), "--tcp", "127.0.0.1:0"],
            cwd=bench.path.parent,
        )
        bench.address = bench.service.wait_for(r"as (https://127\.0\.0\.1:\d+)").group(1)

    def start_exporter(self) -> None:
        groups = {
            bench.name: {
                "InterlockBench": {
                    "address": bench.address,
                    "bench": bench.name,
                    "environment": "simulation",
                }
            }
            for bench in self.benches.values()
        }
        path = self.directory / "exporter.yaml"
        path.write_text(yaml.safe_dump(groups))
        argv = [str(BIN / "interlock-labgrid-exporter"), "-c", self.coordinator, "--name", "hostA"]
        self.spawn("exporter", [*argv, str(path)]).wait_for("Exporter ready")

    def add_places(self) -> None:
        for name in self.benches:
            self.lg(self.env, "-p", name, "create", check=True)
            self.lg(self.env, "-p", name, "add-match", f"hostA/{name}/InterlockBench", check=True)

    def write_env(self, name: str, nets: dict, *, place: str | None = None) -> Path:
        """An environment YAML: one target per place (the lab's ``LG_ENV``), or one ``main``
        target for ``place`` (what labgrid's pytest plugin takes)."""
        drivers = {
            "InterlockClientDriver": {
                "ca": str(self.ca_file),
                "tokens": str(self.directory / "{bench}" / "run" / "tokens"),
            },
            "InterlockPowerDriver": {"nets": nets},
        }
        places = [place] if place else list(self.benches)
        targets = {
            ("main" if place else name): {
                "resources": {"RemotePlace": {"name": name}},
                "drivers": drivers,
            }
            for name in places
        }
        doc = {
            "targets": targets,
            "options": {"coordinator_address": self.coordinator},
            "imports": ["interlock.labgrid"],
        }
        path = self.directory / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    # -- the end ----------------------------------------------------------------------------

    def stop_bench(self, bench: Bench) -> None:
        if bench.service is not None and bench.service.popen.poll() is None:
            self.interlock("stop", "--sim", "--bench", str(bench.path))
            bench.service.stop()
        else:  # killed: its simulator, a process of its own, may still run
            self.interlock("sim", "stop", "--bench", str(bench.path))

    def stop(self) -> None:
        for bench in self.benches.values():
            with contextlib.suppress(Exception):
                self.stop_bench(bench)
        for proc in reversed(self.procs):
            proc.stop()


def start_lab(names: tuple[str, ...] = ("bench-a", "bench-b")) -> Lab:
    directory = Path(tempfile.mkdtemp(prefix="ilg-", dir="/tmp"))  # short socket paths
    env = {k: v for k, v in os.environ.items() if not k.startswith("LG_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    lab = Lab(directory, env)
    try:
        started = time.monotonic()
        lab.start_coordinator()
        ca = trustme.CA()
        lab.ca_file = directory / "lab-ca.pem"
        ca.cert_pem.write_to_path(str(lab.ca_file))
        for name in names:
            lab.add_bench(name, ca)
        for bench in lab.benches.values():
            lab.start_bench(bench)
        lab.start_exporter()
        lab.add_places()
        lab.timings["lab_ready_s"] = time.monotonic() - started
    except BaseException:
        lab.stop()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return lab
