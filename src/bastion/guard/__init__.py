"""Runtime rails: normalized text, scanners found by name, results with spans."""

from bastion.guard.result import ScanResult, Span
from bastion.text.normalize import Normalized, normalize

__all__ = ["Normalized", "ScanResult", "Span", "normalize"]
