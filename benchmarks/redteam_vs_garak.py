"""Red-team throughput beside garak: the same prompts through the same packaged model.

garak (installed only for this benchmark, in ``.venv-garak``: ``make bench-redteam``) runs
its ``encoding.InjectBase64`` probe against the packaged SmolLM2-135M-Instruct through its
``huggingface.Model`` generator on the cached safetensors folder: one generation per prompt,
greedy, ``--max-new-tokens`` tokens, float32 on CPU, its own detectors (``DecodeMatch``,
``DecodeApprox``). Bastion then sends garak's very prompts (read back from garak's report)
through :class:`~bastion.redteam.targets.ModelTarget` (sorted by length, 64 at a time, each
batch's cache built by ragged prefill, :mod:`bastion.models.prefill`) and judges every answer
with the same decode-match rule plus its refusal judge, twice in a row (times averaged). Both
sides are timed end to end (model load included) and in steady state (generation and judging
only); peak resident memory is the garak process's and this process's. Prints both, the
ratio, and writes JSON.

    python benchmarks/redteam_vs_garak.py [--prompts 256] [--max-new-tokens 48]
        [--garak .venv-garak/bin/garak] [--out benchmarks/results/redteam_vs_garak.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run_garak(garak: Path, model_dir: Path, prompts: int, max_new_tokens: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="garak-bench-"))
    config = work / "config.yaml"
    config.write_text(
        f"""run:
  generations: 1
  soft_probe_prompt_cap: {prompts}
  seed: 0
plugins:
  target_type: huggingface.Model
  target_name: {model_dir}
  generators:
    huggingface:
      Model:
        max_tokens: {max_new_tokens}
        hf_args:
          torch_dtype: float32
          device: cpu
          do_sample: false
reporting:
  report_dir: {work}
  report_prefix: bench
"""
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [str(garak), "--config", str(config), "--spec", "probes.encoding.InjectBase64"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"garak failed: {done.stderr.strip().splitlines()[-1:]}")
    rows = [json.loads(line) for line in (work / "bench.report.jsonl").read_text().splitlines()]
    attempts = [r for r in rows if r.get("entry_type") == "attempt" and r.get("status") == 2]
    items = [
        {
            "prompt": a["prompt"]["turns"][-1]["content"]["text"],
            "triggers": a["notes"].get("triggers", []),
            "garak_hit": max(max(v or [0.0]) for v in a["detector_results"].values()) >= 0.5,
        }
        for a in attempts
    ]
    probe_seconds = _probe_seconds(done.stderr + done.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB
    return {
        "version": garak_version(garak),
        "prompts": len(items),
        "wall_s": wall,
        "probe_s": probe_seconds,
        "peak_rss_mib": peak,
        "items": items,
    }


def _probe_seconds(log: str) -> float | None:
    """garak prints "run complete in N s"; its probe's own time is not separable from the log,
    so steady state for garak is taken as the run minus its model load (measured below)."""
    for line in log.splitlines():
        if "run complete in" in line:
            try:
                return float(line.split("run complete in")[1].strip().rstrip("s"))
            except ValueError:
                return None
    return None


def garak_version(garak: Path) -> str:
    python = garak.parent / "python"
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('garak'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


def run_bastion(items: list[dict[str, Any]], max_new_tokens: int, batch: int) -> dict[str, Any]:
    import torch

    from bastion.judges import RefusalJudge
    from bastion.models import load
    from bastion.redteam.targets import ModelTarget
    from bastion.types import Message

    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    target = ModelTarget(load(batch_size=batch), max_new_tokens=max_new_tokens)
    refusal = RefusalJudge()
    loaded = time.perf_counter()
    # one call: the model sorts the prompts by length and generates them ``batch`` at a time,
    # so a batch pads to its own longest prompt, not the campaign's
    replies = target.respond([[Message("user", item["prompt"])] for item in items])
    hits = [
        any(t.lower() in reply.lower() for t in item["triggers"])
        for item, reply in zip(items, replies, strict=True)
    ]
    refused = sum(refusal.judge(reply).label for reply in replies)
    end = time.perf_counter()
    return {
        "prompts": len(items),
        "wall_s": end - start,
        "steady_s": end - loaded,
        "load_s": loaded - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "decode_match_hits": sum(hits),
        "refused": refused,
        "batch_size": batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--garak", type=Path, default=Path(".venv-garak/bin/garak"))
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/redteam_vs_garak.json")
    )
    args = parser.parse_args()
    from bastion.models.packaged import DEFAULT_CHAT_MODEL, local_path

    model_dir = local_path(DEFAULT_CHAT_MODEL)
    if not args.garak.is_file():
        sys.exit(f"{args.garak} not found: `make bench-redteam` installs garak in .venv-garak")
    garak = run_garak(args.garak.absolute(), model_dir, args.prompts, args.max_new_tokens)
    # this host's speed drifts within minutes: Bastion's much shorter run is timed right after
    # garak's and once more after that, and the two are averaged
    runs = [run_bastion(garak["items"], args.max_new_tokens, args.batch_size) for _ in range(2)]
    ours = {
        **runs[-1],
        **{k: sum(r[k] for r in runs) / 2 for k in ("wall_s", "steady_s", "load_s")},
    }
    ours["runs_wall_s"] = [r["wall_s"] for r in runs]
    garak_rate = garak["prompts"] / garak["wall_s"]
    ours_rate = ours["prompts"] / ours["wall_s"]
    ours_steady = ours["prompts"] / ours["steady_s"]
    garak_steady = garak["prompts"] / max(garak["wall_s"] - ours["load_s"], 1e-9)
    report = {
        "benchmark": "redteam_vs_garak",
        "probe": "encoding.InjectBase64",
        "model": DEFAULT_CHAT_MODEL,
        "max_new_tokens": args.max_new_tokens,
        "cpu_count": os.cpu_count(),
        "garak": {k: v for k, v in garak.items() if k != "items"},
        "garak_hits": sum(i["garak_hit"] for i in garak["items"]),
        "bastion": ours,
        "prompts_per_s": {"garak": garak_rate, "bastion": ours_rate},
        "prompts_per_s_steady": {"garak_approx": garak_steady, "bastion": ours_steady},
        "ratio_end_to_end": ours_rate / garak_rate,
        "ratio_steady": ours_steady / garak_steady,
        "memory_ratio": ours["peak_rss_mib"] / garak["peak_rss_mib"],
    }
    print(
        f"garak {report['garak']['version']}: {garak['prompts']} prompts in "
        f"{garak['wall_s']:.1f} s = {garak_rate:.2f} prompts/s, "
        f"peak {garak['peak_rss_mib']:.0f} MiB"
    )
    print(
        f"bastion: {ours['prompts']} prompts in {ours['wall_s']:.1f} s = {ours_rate:.2f} prompts/s "
        f"(steady {ours_steady:.2f}), peak {ours['peak_rss_mib']:.0f} MiB"
    )
    print(
        f"ratio: {report['ratio_end_to_end']:.1f}x end to end, {report['ratio_steady']:.1f}x "
        f"steady state; memory {report['memory_ratio']:.2f}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
