import hashlib
import zipfile
from pathlib import Path

import pytest

from bastion.data import wheels
from bastion.data.wheels import WheelSpec, fetch_wheel, is_fetched, licence_files, wheel_dir
from bastion.errors import IntegrityError


def make_wheel(folder: Path, payload: str = "hello") -> tuple[Path, str]:
    """A minimal wheel ``bastion-fixture-1.0`` with a data file and a licence."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bastion_fixture-1.0-py3-none-any.whl"
    info = "bastion_fixture-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bastion_fixture/data.txt", payload)
        archive.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: bastion-fixture\nVersion: 1.0\n"
        )
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/licenses/LICENSE", "MIT\n")
        archive.writestr(f"{info}/RECORD", "")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_extracts_once_and_keeps_the_licence(tmp_path: Path, monkeypatch) -> None:
    _, digest = make_wheel(tmp_path / "links")
    spec = WheelSpec("bastion-fixture", "1.0", digest, "MIT")
    root = fetch_wheel(spec, find_links=tmp_path / "links")
    assert (root / "bastion_fixture/data.txt").read_text() == "hello"
    assert is_fetched(spec)
    assert [p.name for p in licence_files(spec)] == ["LICENSE"]

    def no_download(*args, **kwargs):
        raise AssertionError("a fetched wheel must not be downloaded again")

    monkeypatch.setattr(wheels, "_download", no_download)
    assert fetch_wheel(spec, find_links=tmp_path / "links") == root


def test_concurrent_fetches_download_once(tmp_path: Path, monkeypatch) -> None:
    import threading

    _, digest = make_wheel(tmp_path / "links")
    spec = WheelSpec("bastion-fixture", "1.0", digest, "MIT")
    real, calls = wheels._download, []

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(wheels, "_download", counting)
    roots: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: roots.append(fetch_wheel(spec, find_links=tmp_path / "links"))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(set(roots)) == 1
    assert (roots[0] / "bastion_fixture/data.txt").read_text() == "hello"


def test_hash_mismatch_extracts_nothing(tmp_path: Path) -> None:
    make_wheel(tmp_path / "links")
    spec = WheelSpec("bastion-fixture", "1.0", "0" * 64, "MIT")
    with pytest.raises(IntegrityError, match=r"does not match the pinned 0{64}"):
        fetch_wheel(spec, find_links=tmp_path / "links")
    assert not wheel_dir(spec).exists()
    assert not is_fetched(spec)


def test_missing_package_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    spec = WheelSpec("bastion-fixture", "9.9", "0" * 64, "MIT")
    with pytest.raises(wheels.BastionError, match=r"could not download bastion-fixture==9\.9"):
        fetch_wheel(spec, find_links=tmp_path / "empty")
