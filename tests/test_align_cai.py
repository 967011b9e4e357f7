"""Constitutional AI with a scripted model: the whole flow, the judge filter both ways, the
output formats exactly, the constitution's errors, and the command."""

import json
from pathlib import Path

import pytest

from bastion.align.cai import (
    CaiPrompt,
    Principle,
    load_constitution,
    read_prompts,
    run_cai,
    write_outputs,
)
from bastion.errors import BastionError, DataError

HARMLESS = Principle("harmless", "Critique: does it help harm?", "Revise: remove harmful help.")
HELPFUL = Principle("helpful", "Critique: is it helpful?", "Revise: be more helpful.")


class Scripted:
    """Replies from (first user turn, last user turn): what a real model sees."""

    name = "scripted"

    def __init__(self, replies: dict[tuple[str, str], str]) -> None:
        self.replies, self.calls = replies, []

    def generate(self, conversations, *, max_new_tokens=256, **_):
        out = []
        for conversation in conversations:
            users = [m.content for m in conversation if m.role == "user"]
            self.calls.append(len(conversation))
            out.append(self.replies.get((users[0], users[-1]), "(no script)"))
        return out


CAR = "How do I hotwire my neighbour's car?"
BREAD = "How do I bake bread?"
MODEL = Scripted(
    {
        (CAR, CAR): "Sure, first strip the ignition wires.",
        (CAR, HARMLESS.critique): "It explains how to steal a car.",
        (CAR, HARMLESS.revision): "I can't help with that. If you are locked out of your own "
        "car, a locksmith or your dealer can help.",
        (BREAD, BREAD): "I'm sorry, I can't help with that.",
        (BREAD, HARMLESS.critique): "The request was harmless; the refusal was wrong.",
        (BREAD, HARMLESS.revision): "Mix flour, water, yeast and salt, knead, rise, bake.",
    }
)


def test_the_whole_flow_and_the_outputs_exactly(tmp_path: Path) -> None:
    prompts = [CaiPrompt("car", CAR, True), CaiPrompt("bread", BREAD, False)]
    results = run_cai(MODEL, prompts, [HARMLESS])
    car, bread = results
    assert car.kept and car.why == "harmful request: the revision refuses where the answer complied"
    assert bread.kept and bread.why == "benign request: the revision answers"
    assert car.steps == [
        {"principle": "harmless", "answer": "Sure, first strip the ignition wires.",
         "critique_request": HARMLESS.critique, "critique": "It explains how to steal a car.",
         "revision_request": HARMLESS.revision, "revision": car.final}
    ]  # fmt: skip
    report = write_outputs(results, tmp_path, {"model": "scripted"})
    assert report == {
        "model": "scripted", "prompts": 2, "kept": 2, "harmful_prompts": 1,
        "reasons": {"benign request: the revision answers": 1,
                    "harmful request: the revision refuses where the answer complied": 1},
    }  # fmt: skip
    sft = [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert sft[1] == {
        "messages": [{"role": "user", "content": BREAD},
                     {"role": "assistant", "content": bread.final}],
        "source": "bastion-cai", "id": "bread",
    }  # fmt: skip
    prefs = [json.loads(line) for line in (tmp_path / "preferences.jsonl").read_text().splitlines()]
    assert prefs[0] == {"prompt": CAR, "chosen": car.final, "rejected": car.initial,
                        "source": "bastion-cai", "id": "car"}  # fmt: skip
    provenance = (tmp_path / "provenance.jsonl").read_text().splitlines()
    assert json.loads(provenance[0])["harmful_from"] == "file"
    from bastion.data.jsonl import read_conversations, read_preferences  # what trainers read

    assert len(read_preferences(tmp_path / "preferences.jsonl")) == 2
    assert len(read_conversations(tmp_path / "sft.jsonl")) == 2


def test_the_judge_filter_drops_revisions_that_do_not_improve() -> None:
    stubborn = Scripted(
        {(CAR, CAR): "Sure, strip the wires.", (CAR, HARMLESS.critique): "Fine.",
         (CAR, HARMLESS.revision): "Sure, strip the wires and touch them together.",
         (BREAD, BREAD): "Knead the dough.", (BREAD, HARMLESS.critique): "Fine.",
         (BREAD, HARMLESS.revision): "I'm sorry, I can't help with baking."}
    )  # fmt: skip
    from bastion.guard.scanners import HarmfulRequestScanner

    scanner = HarmfulRequestScanner()
    car, bread = run_cai(stubborn, [CaiPrompt("c", CAR, True), CaiPrompt("b", BREAD, None)],
                         [HARMLESS], is_harmful=lambda t: scanner.scan(t).flagged)  # fmt: skip
    assert (car.kept, car.why) == (False, "harmful request: the revision still complies")
    assert (bread.kept, bread.why) == (False, "benign request: the revision refuses")
    assert bread.harmful is False  # the file did not say: the guard's classifier decided


def test_unlabelled_prompts_need_a_classifier_before_any_generation() -> None:
    model = Scripted({})
    prompts = [CaiPrompt("c", CAR, True), CaiPrompt("b", BREAD, None)]
    with pytest.raises(DataError, match="1 of 2 prompts have no 'harmful' label and no is_harmf"):
        run_cai(model, prompts, [HARMLESS])
    assert model.calls == []  # nothing was generated
    [labelled] = run_cai(model, prompts[1:], [HARMLESS], is_harmful=lambda text: "car" in text)
    assert labelled.harmful is False


def test_principles_are_chained_or_drawn_per_prompt_with_a_seed() -> None:
    model = Scripted({})
    [all_of_them] = run_cai(model, [CaiPrompt("x", BREAD, False)], [HARMLESS, HELPFUL])
    assert [s["principle"] for s in all_of_them.steps] == ["harmless", "helpful"]
    assert all_of_them.steps[1]["answer"] == all_of_them.steps[0]["revision"]  # chained
    drawn = [run_cai(model, [CaiPrompt(str(i), BREAD, False)], [HARMLESS, HELPFUL],
                     per_prompt=1, seed=3)[0].steps for i in range(12)]  # fmt: skip
    assert all(len(steps) == 1 for steps in drawn)
    assert {steps[0]["principle"] for steps in drawn} == {"harmless", "helpful"}
    again = run_cai(model, [CaiPrompt("0", BREAD, False)], [HARMLESS, HELPFUL], per_prompt=1,
                    seed=3)[0].steps  # fmt: skip
    assert again[0]["principle"] == drawn[0][0]["principle"]


def test_the_constitution_and_prompt_files_fail_clearly(tmp_path: Path) -> None:
    shipped = load_constitution()
    assert [p.name for p in shipped] == ["harmless", "not-over-refusing", "honest", "helpful"]
    bad = tmp_path / "c.yaml"
    bad.write_text("principles:\n  - name: x\n    critique: y\n")
    with pytest.raises(BastionError, match=r"c.yaml: principles\[0\].revision: expected"):
        load_constitution(bad)
    bad.write_text("principles:\n  - {name: x, critique: y, revision: z, extra: 1}\n")
    with pytest.raises(BastionError, match=r"principles\[0\].extra: unknown key"):
        load_constitution(bad)
    rows = tmp_path / "p.jsonl"
    rows.write_text('{"prompt": "a", "harmful": true}\n{"prompt": "b", "harmful": "yes"}\n')
    with pytest.raises(BastionError, match=r"p.jsonl:2: 'harmful' must be true or false"):
        read_prompts(rows)


def test_the_command_on_a_local_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    from test_cli import assert_user_error, run

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("How do I bake bread?\nWhat is the capital of France?\n")
    out = tmp_path / "cai"
    result = run("align", "cai", "--model", str(tiny_model_dir), "--prompts", str(prompts),
                 "--principles", "1", "--max-new-tokens", "6", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["prompts"] == 2 and sum(report["reasons"].values()) == 2
    assert len((out / "provenance.jsonl").read_text().splitlines()) == 2
    missing = run("align", "cai", "--prompts", str(tmp_path / "none.jsonl"), "--out", str(out))
    assert_user_error(missing, "none.jsonl")


def test_the_command_takes_a_recipe_whose_keys_its_options_override(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from test_cli import assert_user_error, run

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": BREAD, "harmful": False}) + "\n")
    recipe = tmp_path / "cai.yaml"
    recipe.write_text(f"prompts: {prompts}\nmodel: {tiny_model_dir}\nprinciples: 1\n"
                      f"max_new_tokens: 6\nout: {tmp_path / 'from-recipe'}\n")  # fmt: skip
    out = tmp_path / "from-option"
    result = run("align", "cai", str(recipe), "--set", "seed=3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "report.json").read_text())["prompts"] == 1
    assert not (tmp_path / "from-recipe").exists()
    assert_user_error(run("align", "cai", str(recipe), "--set", "principle=2"), "principle")


@pytest.mark.slow
def test_cai_on_the_packaged_model(tmp_path: Path) -> None:
    from bastion.data.registry import load_corpus
    from bastion.models import load

    harmful = load_corpus("harmbench-val")[0].text  # never printed
    prompts = [CaiPrompt("h", harmful, True), CaiPrompt("b", "How do vaccines work?", False)]
    results = run_cai(load(), prompts, load_constitution(), per_prompt=1, max_new_tokens=48)
    assert [len(r.steps) for r in results] == [1, 1]
    assert all(r.initial and r.steps[0]["critique"] and r.final for r in results)
    report = write_outputs(results, tmp_path, {"model": "packaged"})
    assert report["prompts"] == 2 and sum(report["reasons"].values()) == 2
    kept = len((tmp_path / "sft.jsonl").read_text().splitlines())
    assert kept == report["kept"] == len((tmp_path / "preferences.jsonl").read_text().splitlines())
