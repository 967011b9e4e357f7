"""Every scanner, registered by name in :data:`SCANNERS` (importing this package registers them)."""

from bastion.guard.scanners.base import SCANNERS, Scanner, register
from bastion.guard.scanners.blocklist import BlocklistScanner
from bastion.guard.scanners.format import CodeScanner, JsonScanner
from bastion.guard.scanners.harmful import HarmfulRequestScanner
from bastion.guard.scanners.injection import InjectionScanner
from bastion.guard.scanners.known_attacks import KnownAttackScanner
from bastion.guard.scanners.length import LengthScanner
from bastion.guard.scanners.pii import PiiScanner
from bastion.guard.scanners.refusal import LeakScanner, RefusalScanner
from bastion.guard.scanners.secrets import SecretsScanner
from bastion.guard.scanners.toxicity import ToxicityScanner

__all__ = [
    "SCANNERS",
    "BlocklistScanner",
    "CodeScanner",
    "HarmfulRequestScanner",
    "InjectionScanner",
    "JsonScanner",
    "KnownAttackScanner",
    "LeakScanner",
    "LengthScanner",
    "PiiScanner",
    "RefusalScanner",
    "Scanner",
    "SecretsScanner",
    "ToxicityScanner",
    "register",
]
