"""Shared fixtures: a private cache per unit test, and one tiny chat model per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.models import HFChatModel
from bastion.models.tiny import build_tiny_chat_model


@pytest.fixture(autouse=True)
def private_cache(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Unit tests never touch the user's cache; slow tests share it (models are big)."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("BASTION_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_chat(tiny_model_dir: Path) -> HFChatModel:
    return HFChatModel.from_pretrained(tiny_model_dir, batch_size=3, device="cpu")
