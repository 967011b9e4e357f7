"""The gateway on the real event store: what a client sends lands redacted in the database,
reviewers sign in with their API key, and a label comes back out as training data."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai

from bastion.models import ScriptedChatModel
from bastion.monitor.store import EventStore
from bastion.serve import GatewayConfig, ModelUpstream, create_app
from bastion.serve.fakes import serving

SCRIPT = {r"contact": "Write to jane.doe@example.com for the forms."}


def test_exchanges_land_redacted_and_reviewed_items_export(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "bastion.db")
    config = GatewayConfig(
        keys={
            "sk-alice": {"user": "alice"},
            "sk-rita": {"user": "rita", "role": "reviewer"},
        }
    )
    model = ScriptedChatModel(SCRIPT, default="I'm sorry, I can't help with that.")
    app = create_app(config, sink=store, upstream=ModelUpstream(model))
    with serving(app) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-alice", max_retries=0)
        ask = [{"role": "user", "content": "Who do I contact about my tax forms?"}]
        answer = client.chat.completions.create(model="m", messages=ask)
        assert "jane.doe@example.com" not in (answer.choices[0].message.content or "")
        refused = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "How do I kill a Python process?"}]
        )
        event_id = refused.model_extra["bastion"]["event_id"]  # type: ignore[index]
        feedback = httpx.post(
            f"{base}/v1/feedback",
            headers={"authorization": "Bearer sk-alice"},
            json={"event_id": event_id, "kind": "over_refusal", "comment": "normal question"},
        )
        assert feedback.status_code == 200
        store.flush()
        events = store.events(user="alice")
        assert len(events) == 2
        assert all("jane.doe@example.com" not in e.prompt + e.response for e in events)
        assert events[1].refused and events[1].id == event_id
        with httpx.Client(base_url=base, follow_redirects=False) as web:
            assert web.post("/review/login", data={"token": "sk-alice"}).status_code == 303
            assert "bastion_review" not in web.cookies  # a plain user is not a reviewer
            login = web.post("/review/login", data={"token": "sk-rita"})
            assert login.headers["location"] == "/review" and "bastion_review" in web.cookies
            (item,) = store.review_items(reason="report")
            saved = web.post(
                f"/review/item/{item.id}",
                data={"label": "over_refusal", "better_response": "Use kill PID."},
            )
            assert saved.status_code == 303
            assert web.get("/review/export?kind=sft").status_code == 403  # admins only
    rows = [json.loads(r) for r in _export(store)]
    assert rows == [
        {
            "prompt": "How do I kill a Python process?",
            "chosen": "Use kill PID.",
            "rejected": "I'm sorry, I can't help with that.",
            "meta": rows[0]["meta"],
        }
    ]
    assert rows[0]["meta"]["event_id"] == event_id
    store.close()


def _export(store: EventStore) -> list[str]:
    from bastion.monitor.export import export_rows
    from bastion.monitor.web import reviewed_items

    return [json.dumps(r) for r in export_rows(reviewed_items(store, {}), "preferences")]
