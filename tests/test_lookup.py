"""Finding the bench file as labgrid's users expect: given, $INTERLOCK_BENCH, then upward."""

from __future__ import annotations

from pathlib import Path

import pytest

import interlock
from interlock.cli import main
from interlock.errors import ConfigError
from interlock.lookup import ABOVE, FROM_ENVIRONMENT, GIVEN, HERE, locate_bench

ROOT_BENCH = Path(__file__).resolve().parents[1] / "bench.toml"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """tmp/top/bench.toml and tmp/top/a/b, the current directory; no $INTERLOCK_BENCH."""
    monkeypatch.delenv("INTERLOCK_BENCH", raising=False)
    deep = tmp_path / "top" / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    return tmp_path


def test_given_first_then_the_environment_then_here_then_above(tree, monkeypatch):
    top = tree / "top" / "bench.toml"
    top.write_text("")
    assert locate_bench() == type(locate_bench())(top, ABOVE)
    assert locate_bench().describe() == f"bench file {top} (found above the current directory)"
    (tree / "top" / "a" / "b" / "bench.toml").write_text("")
    assert locate_bench().source == HERE and locate_bench().path == Path("bench.toml")
    monkeypatch.setenv("INTERLOCK_BENCH", "/x/y.toml")
    assert (locate_bench().path, locate_bench().source) == (Path("/x/y.toml"), FROM_ENVIRONMENT)
    assert locate_bench().describe() == "bench file /x/y.toml (from $INTERLOCK_BENCH)"
    assert (locate_bench("z.toml").path, locate_bench("z.toml").source) == (Path("z.toml"), GIVEN)


def test_none_found_is_a_config_error_that_says_where_it_looked(tree):
    with pytest.raises(ConfigError, match=r"no bench file: none given .*`interlock init DIR`"):
        locate_bench()


def test_the_cli_says_which_bench_it_took(tree, capsys, monkeypatch):
    (tree / "top" / "bench.toml").write_text(
        ROOT_BENCH.read_text().replace(
            'profile = "profiles/', f'profile = "{ROOT_BENCH.parent}/profiles/'
        )
    )
    assert main(["check"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"interlock: bench file {tree / 'top' / 'bench.toml'} (found above the current directory)"
    ]
    assert captured.out.startswith("bench sim-bench-01 [simulation]")
    (tree / "top" / "bench.toml").unlink()
    assert main(["check"]) == 2
    assert "ConfigError: bench.toml: no bench file" in capsys.readouterr().err


def test_connect_outside_the_checkout_finds_the_bench_or_says_none(tree):
    with pytest.raises(ConfigError, match="no bench file"):
        interlock.connect(start=False)
