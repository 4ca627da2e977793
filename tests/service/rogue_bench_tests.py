"""Tests that misbehave on purpose, run by test_pytest_plugin.py (never collected on their own).

Whatever they do, the ``bench`` fixture must leave the bench safe.
"""


def bring_up_logic(bench):
    bench.set_current_limit("VLOGIC", 0.3)
    bench.set_voltage("VLOGIC", 5.0)
    bench.output_on("VLOGIC")


def test_breaks_while_live(bench):
    bring_up_logic(bench)
    raise RuntimeError("the test broke while VLOGIC was live")


def test_closes_its_client_while_live(bench):
    bring_up_logic(bench)
    bench.close()  # gives the lease back with VLOGIC live: the service trips the bench
