"""Datasets: JSONL in the TRL formats, the pinned corpus registry, and stable splits."""
