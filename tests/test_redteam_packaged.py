"""A small campaign against the packaged chat model, end to end (slow)."""

from pathlib import Path

import pytest

from bastion.redteam.stats import wilson


@pytest.mark.slow
def test_small_campaign_on_the_packaged_model(tmp_path: Path) -> None:
    from bastion.models import load
    from bastion.redteam.attacks import get_attacks
    from bastion.redteam.behaviors import benign_suite, load_behaviors
    from bastion.redteam.campaign import plan, run_campaign
    from bastion.redteam.report import write_report
    from bastion.redteam.results import summarize
    from bastion.redteam.targets import ModelTarget

    target = ModelTarget(load(), max_new_tokens=32)
    attacks = get_attacks(["direct", "base64", "few_shot", "indirect_injection", "crescendo"])
    items = plan(load_behaviors("harmbench-val", 2), attacks, 1, benign_suite(3))
    results = run_campaign(target, items, attacks, tmp_path, batch_size=8)
    assert len(results) == 2 * 5 + 3 and all(r.response.strip() for r in results)
    summary = summarize(results)
    attack_rows = [r for r in results if r.kind == "attack"]
    hits = sum(r.success for r in attack_rows)
    assert (summary["asr"]["hits"], summary["asr"]["n"]) == (hits, 10)
    assert (summary["asr"]["low"], summary["asr"]["high"]) == pytest.approx(wilson(hits, 10))
    injected = [r for r in attack_rows if r.attack == "indirect_injection"]
    assert all(r.canary and "canary" in r.scores for r in injected)
    crescendo = [r for r in attack_rows if r.attack == "crescendo"]
    assert all(r.turns >= 4 and r.messages >= 7 for r in crescendo)
    assert summary["over_refusal"]["n"] == 3
    assert write_report(tmp_path, summary, results).read_text().count("<svg") == 2
