"""Red teaming: probe a model (or a guarded app) with harmful and benign prompts.

A :class:`Target` answers conversations (:class:`ModelTarget`, :class:`GuardedTarget`,
:func:`make_target`); attacks are found by name in one registry (:data:`ATTACKS`,
:func:`get_attacks`; a new one subclasses :class:`Attack` and is :func:`register`-ed); a
campaign plans behaviours × attacks × samples, runs them resumably and writes
``results.jsonl``, ``summary.json`` and ``report.html`` (:class:`Campaign` for the whole of
``bastion redteam run``, :func:`plan` and :func:`run_plan` for the parts). See
``docs/redteam.md``.
"""

from bastion.redteam.attacks import ATTACKS, Attack, AttackCase, Behavior, get_attacks, register
from bastion.redteam.behaviors import benign_suite, load_behaviors
from bastion.redteam.campaign import (
    Campaign,
    CampaignProgress,
    CampaignReport,
    CampaignSpec,
    Judges,
    plan,
    run_plan,
    write_outputs,
)
from bastion.redteam.report import compare, read_summary, write_report
from bastion.redteam.results import Result, load_results, summarize
from bastion.redteam.targets import GuardedTarget, ModelTarget, Target, make_target

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackCase",
    "Behavior",
    "Campaign",
    "CampaignProgress",
    "CampaignReport",
    "CampaignSpec",
    "GuardedTarget",
    "Judges",
    "ModelTarget",
    "Result",
    "Target",
    "benign_suite",
    "compare",
    "get_attacks",
    "load_behaviors",
    "load_results",
    "make_target",
    "plan",
    "read_summary",
    "register",
    "run_plan",
    "summarize",
    "write_outputs",
    "write_report",
]
