"""The closed loop: red-team failures and reviewed production events become the training data
of the next model, which is promoted only when it is safer, no more refusing and no less able.
See :mod:`bastion.loop.run` for the stages and ``bastion loop`` for the command."""

from bastion.loop.config import LoopConfig, load_loop_config
from bastion.loop.gate import GateDecision, Measures, decide
from bastion.loop.run import LoopParts, LoopResult, run_loop
from bastion.loop.train import AlignJob, AlignOutcome, load_chain, train_adapters

__all__ = [
    "AlignJob",
    "AlignOutcome",
    "GateDecision",
    "LoopConfig",
    "LoopParts",
    "LoopResult",
    "Measures",
    "decide",
    "load_chain",
    "load_loop_config",
    "run_loop",
    "train_adapters",
]
