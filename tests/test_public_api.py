"""The public API is a promise: this test pins it, so a change to it is a deliberate one."""

import importlib

import pytest

import bastion
import bastion.models


def test_top_level_api() -> None:
    assert sorted(bastion.__all__) == sorted(
        [
            "BastionError",
            "ConfigError",
            "Conversation",
            "ConversationLike",
            "DataError",
            "IntegrityError",
            "Message",
            "ModelError",
            "PreferencePair",
            "UnpairedExample",
            "UpstreamError",
            "Verdict",
            "__version__",
            "as_conversation",
        ]
    )


def test_models_api() -> None:
    assert sorted(bastion.models.__all__) == sorted(
        [
            "PACKAGED",
            "ChatModel",
            "CompletionLogprobs",
            "EchoChatModel",
            "Embedder",
            "FakeEmbedder",
            "HFChatModel",
            "HFEmbedder",
            "OpenAIChatModel",
            "ScoringModel",
            "ScriptedChatModel",
            "load",
            "load_chat_model",
            "load_embedder",
        ]
    )
    for name in bastion.models.__all__:
        assert getattr(bastion.models, name) is not None


# What each part's guide uses, importable from the part itself (`from bastion.guard import Guard`).
PARTS = {
    "bastion.guard": [
        "ContextDecision",
        "Decision",
        "Guard",
        "Normalized",
        "Policy",
        "SCANNERS",
        "ScanResult",
        "Scanner",
        "Span",
        "Vault",
        "check_conversation",
        "load_policy",
        "normalize",
        "parse_policy",
        "register",
    ],
    "bastion.align": [
        "CaiPrompt",
        "CaiRecipe",
        "LOSSES",
        "LoraSettings",
        "LossOutput",
        "PpoConfig",
        "PpoRecipe",
        "PpoTrainSettings",
        "PpoTrainer",
        "PreferenceConfig",
        "PreferenceRecipe",
        "PreferenceTrainer",
        "Principle",
        "RewardModel",
        "RewardRecipe",
        "RewardTrainer",
        "SftRecipe",
        "SftTrainer",
        "TrainConfig",
        "TrainResult",
        "TrainingError",
        "UnlearnRecipe",
        "UnlearnTrainer",
        "WatchSettings",
        "add_lora",
        "build_rewards",
        "dpo_loss",
        "evaluate_unlearning",
        "gae",
        "hinge_loss",
        "ipo_loss",
        "kl_per_token",
        "kto_loss",
        "length_bias",
        "load_constitution",
        "load_recipe",
        "npo_loss",
        "orpo_loss",
        "ppo_losses",
        "read_prompts",
        "reward_loss",
        "run_cai",
        "run_cai_recipe",
        "run_ppo",
        "run_preference",
        "run_rm",
        "run_sft",
        "run_unlearn",
        "sft_loss",
        "simpo_loss",
        "whiten",
    ],
    "bastion.redteam": [
        "ATTACKS",
        "Attack",
        "AttackCase",
        "Behavior",
        "Campaign",
        "CampaignProgress",
        "CampaignReport",
        "CampaignSpec",
        "GuardedTarget",
        "Judges",
        "ModelTarget",
        "Result",
        "Target",
        "benign_suite",
        "compare",
        "get_attacks",
        "load_behaviors",
        "load_results",
        "make_target",
        "plan",
        "read_summary",
        "register",
        "run_plan",
        "summarize",
        "write_outputs",
        "write_report",
    ],
    "bastion.loop": [
        "AlignJob",
        "AlignOutcome",
        "GateDecision",
        "LoopConfig",
        "LoopParts",
        "LoopResult",
        "Measures",
        "decide",
        "load_chain",
        "load_loop_config",
        "run_loop",
        "train_adapters",
    ],
    "bastion.monitor": [
        "Alert",
        "AnomalyMonitor",
        "AttackTrend",
        "BlockRate",
        "Bucket",
        "DETECTORS",
        "Detector",
        "Entropy",
        "Event",
        "EventStore",
        "Feedback",
        "Label",
        "LogSink",
        "MonitorConfig",
        "NearDuplicates",
        "Perplexity",
        "Probing",
        "RefusalRate",
        "Repetition",
        "ReviewItem",
        "StoreError",
        "WebhookSink",
        "build_detectors",
        "build_monitor",
        "lm_scorer",
        "load_config",
        "parse_config",
        "scan",
        "scan_store",
        "watch",
        "watch_store",
    ],
    "bastion.serve": [
        "CircuitBreaker",
        "Completion",
        "Delta",
        "EventSink",
        "GatewayConfig",
        "HTTPUpstream",
        "JsonlSink",
        "KeyRing",
        "MemorySink",
        "ModelUpstream",
        "Principal",
        "RateLimiter",
        "ReviewQueue",
        "Upstream",
        "UpstreamFailure",
        "UpstreamRequest",
        "create_app",
        "load_config",
    ],
    "bastion.data": [
        "Corpus",
        "CorpusItem",
        "append_jsonl",
        "assign_split",
        "get_corpus",
        "iter_jsonl",
        "json_line",
        "load_corpus",
        "read_conversations",
        "read_preferences",
        "read_unpaired",
        "split",
        "stable_fraction",
        "write_jsonl",
    ],
    "bastion.judges": [
        "CanaryJudge",
        "HarmJudge",
        "LlmJudge",
        "REFUSAL_PATTERNS",
        "RefusalClassifierJudge",
        "RefusalJudge",
        "RefusalPhraseJudge",
        "judge_agreement",
    ],
}


@pytest.mark.parametrize("module", sorted(PARTS))
def test_each_part_exports_what_its_guide_uses(module: str) -> None:
    package = importlib.import_module(module)
    assert sorted(package.__all__) == sorted(PARTS[module])
    for name in package.__all__:
        assert getattr(package, name) is not None, f"{module}.{name}"


@pytest.mark.parametrize("module", ["bastion.align", "bastion.guard", "bastion.monitor"])
def test_a_lazily_exported_part_names_what_it_lacks(module: str) -> None:
    package = importlib.import_module(module)
    with pytest.raises(AttributeError, match=f"'{module}' has no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018
    assert set(package.__all__) <= set(dir(package))
