"""Runtime rails: normalized text, scanners found by name, results with spans."""

from bastion.guard.normalize import Normalized, normalize
from bastion.guard.result import ScanResult, Span

__all__ = ["Normalized", "ScanResult", "Span", "normalize"]
