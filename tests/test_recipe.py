from pathlib import Path

import pytest

from bastion.align.recipe import (
    CaiRecipe,
    PpoRecipe,
    PreferenceRecipe,
    RewardRecipe,
    SftRecipe,
    UnlearnRecipe,
    load_recipe,
)
from bastion.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


RECIPES = Path(__file__).parents[1] / "recipes"


@pytest.mark.parametrize(
    ("name", "kind"), [("dpo", PreferenceRecipe), ("sft", SftRecipe), ("rm", RewardRecipe)]
)
def test_every_sample_recipe_is_valid(name: str, kind: type) -> None:
    recipe = load_recipe(RECIPES / f"{name}.yaml", [], kind)
    assert recipe.train.output_dir == Path(f"runs/{name}")


def test_sample_recipes_are_all_tested() -> None:
    names = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    assert names == ["cai", "dpo", "loop", "ppo", "rm", "sft", "unlearn"]


def test_the_ppo_and_loop_recipes_are_valid() -> None:
    from bastion.loop.config import load_loop_config

    ppo = load_recipe(RECIPES / "ppo.yaml", [], PpoRecipe)
    assert ppo.train.output_dir == Path("runs/ppo") and ppo.rewards[0].kind == "safety"
    assert load_loop_config(RECIPES / "loop.yaml", []) is not None


def test_the_cai_and_unlearn_recipes_are_valid_and_their_files_exist() -> None:
    root = RECIPES.parent
    cai = load_recipe(RECIPES / "cai.yaml", [], CaiRecipe)
    assert cai.out == Path("runs/cai") and cai.principles is None and cai.max_new_tokens == 256
    assert (root / cai.prompts).is_file()
    unlearn = load_recipe(RECIPES / "unlearn.yaml", [], UnlearnRecipe)
    assert unlearn.out == Path("runs/unlearn") and unlearn.method == "npo" and unlearn.steps == 20
    assert unlearn.rephrased is not None
    assert all((root / p).is_file() for p in (unlearn.forget, unlearn.retain, unlearn.rephrased))


def test_command_flags_override_the_recipe_and_set(tmp_path: Path) -> None:
    path = write(tmp_path, "forget: f.jsonl\nretain: r.jsonl\nsteps: 5\nlr: 1.0e-4\n")
    flags = {"steps": 7, "method": None, "out": tmp_path / "o"}  # None: the flag was not given
    recipe = load_recipe(path, ["steps=6", "method=ga"], UnlearnRecipe, flags)
    assert (recipe.steps, recipe.method, recipe.lr, recipe.out) == (7, "ga", 1e-4, tmp_path / "o")
    with pytest.raises(ConfigError, match=r"recipe: prompts: Field required"):
        load_recipe(None, [], CaiRecipe, {"model": "packaged"})
    with pytest.raises(ConfigError, match=r"recipe: principles: Input should be greater"):
        load_recipe(None, [], CaiRecipe, {"prompts": Path("p.txt"), "principles": 0})


def test_overrides_are_typed_and_nested(tmp_path: Path) -> None:
    path = write(tmp_path, "data: pairs.jsonl\ntrain:\n  lr: 1.0e-5\n")
    recipe = load_recipe(path, ["train.lr=3e-4", "loss=ipo", "lora=null"], PreferenceRecipe)
    assert recipe.train.lr == pytest.approx(3e-4) and recipe.loss == "ipo" and recipe.lora is None


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("data: p.jsonl\ntrain:\n  lrr: 1\n", [], r"recipe\.yaml: train\.lrr: Extra inputs"),
        ("data: p.jsonl\n", ["train.lr=-1"], r"train\.lr: Input should be greater than 0"),
        ("data: p.jsonl\nloss: ppo\n", [], r"recipe\.yaml: loss: String should match"),
        ("train: {}\n", [], r"recipe\.yaml: data: Field required"),
        ("- a list\n", [], r"expected a mapping"),
        ("data: [unclosed\n", [], r"not valid YAML"),
        ("data: p.jsonl\n", ["no-equals-sign"], r"expected key\.path=value"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_recipe(write(tmp_path, text), overrides, PreferenceRecipe)
