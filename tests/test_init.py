"""``interlock init``: the bundled example bench, the same as the checkout's, written once."""

from __future__ import annotations

from pathlib import Path

from interlock.cli import main
from interlock.commands.init import example_files

ROOT = Path(__file__).resolve().parents[1]


def test_the_bundled_example_is_the_checkouts():
    bundled = example_files()
    assert set(bundled) == {
        "bench.toml",
        *(f"profiles/{p.name}" for p in (ROOT / "profiles").glob("*.toml")),
        *(f"sequences/{p.name}" for p in (ROOT / "sequences").glob("*.toml")),
    }
    for name, packaged in bundled.items():
        assert packaged.read_bytes() == (ROOT / name).read_bytes(), f"{name}: keep them in step"


def test_init_writes_a_bench_that_checks_and_never_overwrites(tmp_path, capsys, monkeypatch):
    target = tmp_path / "lab"
    assert main(["init", str(target)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"wrote the example simulated bench to {target}: bench.toml, ")
    assert out[1] == f"run it: cd {target} && interlock run --yes sequences/mdb24_power_up.toml"
    monkeypatch.chdir(target / "sequences")  # found upward, as a user in a subdirectory
    monkeypatch.delenv("INTERLOCK_BENCH", raising=False)
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith("bench sim-bench-01 [simulation]")
    (target / "bench.toml").write_text("# mine\n")
    assert main(["init", str(target)]) == 2
    assert "bench.toml, profiles/mdb24.toml" in capsys.readouterr().err
    assert (target / "bench.toml").read_text() == "# mine\n"
