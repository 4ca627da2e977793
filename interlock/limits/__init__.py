"""The limit engine: every rule of the interlock, as pure functions (no I/O).

- :mod:`.model`: what the rules reason about (the pinned limits, the
  commanded state, requests, verdicts);
- :mod:`.requests`: request-time rules, one requested change against the
  pinned limits and the whole commanded state (:func:`evaluate`);
- :mod:`.ramps`: how a voltage is reached, planned and bounded
  (:func:`plan_voltage`);
- :mod:`.measurements`: measurement-time rules, what the instruments report
  against the pinned limits (a :class:`~.measurements.Finding` or None);
- :mod:`.registry`: every rule's name, what it refuses or trips on, where it
  is defined and which function enforces it (:func:`~.registry.rule_table`).

The configuration builds the pinned limits from these types; the engine
imports neither the configuration nor anything that does I/O.
"""

from interlock.limits.measurements import Finding
from interlock.limits.model import (
    ALLOWED,
    BUILT_IN,
    SAFE_STATE,
    BenchState,
    Decision,
    DutIdentity,
    NetLimits,
    NetState,
    OpenBeforeChangeRule,
    PinnedLimits,
    RelayGroupRule,
    Request,
    SafeToMate,
    SetCurrentLimit,
    SetOutput,
    SetRelay,
    SetVoltage,
    Verdict,
    describe,
)
from interlock.limits.ramps import (
    RAMP_MARGIN,
    RAMP_MAX_SECONDS,
    RAMP_MAX_STEPS,
    RampStep,
    VoltagePlan,
    at_step,
    check_ramp,
    continue_ramp,
    plan_voltage,
    ramp_steps,
    step_interval,
)
from interlock.limits.requests import (
    apply,
    check,
    check_finite,
    check_state,
    check_target,
    evaluate,
    is_finite_number,
    total_power,
    went_on,
)

__all__ = [
    "ALLOWED",
    "BUILT_IN",
    "RAMP_MARGIN",
    "RAMP_MAX_SECONDS",
    "RAMP_MAX_STEPS",
    "SAFE_STATE",
    "BenchState",
    "Decision",
    "DutIdentity",
    "Finding",
    "NetLimits",
    "NetState",
    "OpenBeforeChangeRule",
    "PinnedLimits",
    "RampStep",
    "RelayGroupRule",
    "Request",
    "SafeToMate",
    "SetCurrentLimit",
    "SetOutput",
    "SetRelay",
    "SetVoltage",
    "Verdict",
    "VoltagePlan",
    "apply",
    "at_step",
    "check",
    "check_finite",
    "check_ramp",
    "check_state",
    "check_target",
    "continue_ramp",
    "describe",
    "evaluate",
    "is_finite_number",
    "plan_voltage",
    "ramp_steps",
    "step_interval",
    "total_power",
    "went_on",
]
