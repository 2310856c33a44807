"""What changed between two runs, answer by answer: which choice each model picks, per task.

    python examples/finetune-gate/predictions.py BASELINE_RUN_DIR CANDIDATE_RUN_DIR [--json out.json]

A paired test says whether a difference is noise; it does not say what the difference is. For
multiple-choice tasks the first thing to look at is the distribution of picked answers next to the gold
distribution: a model that always answers "A" scores exactly the share of "A" among the gold answers.
Reads each run's ``samples.jsonl.gz`` (the per-document loglikelihoods evalmon keeps).
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any


def samples(run_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    with gzip.open(run_dir / "samples.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return {(r["task"], r["doc_id"]): r for r in rows if r.get("loglikelihoods")}


def picked(row: dict[str, Any]) -> str:
    ll = row["loglikelihoods"]
    return str(row["choices"][max(range(len(ll)), key=ll.__getitem__)])


def summary(base: Path, cand: Path) -> dict[str, dict[str, Any]]:
    b, c = samples(base), samples(cand)
    out: dict[str, dict[str, Any]] = {}
    for task in sorted({t for t, _ in b}):
        keys = [k for k in b if k[0] == task and k in c]
        gold = Counter(str(b[k]["choices"][b[k]["target"]]) for k in keys)
        out[task] = {
            "n": len(keys),
            "gold": dict(sorted(gold.items())),
            "baseline_picks": dict(sorted(Counter(picked(b[k]) for k in keys).items())),
            "candidate_picks": dict(sorted(Counter(picked(c[k]) for k in keys).items())),
            "same_pick": sum(picked(b[k]) == picked(c[k]) for k in keys),
            "majority_class_acc": round(max(gold.values()) / len(keys), 4) if keys else None,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("baseline", type=Path)
    p.add_argument("candidate", type=Path)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    result = summary(args.baseline, args.candidate)
    for task, s in result.items():
        print(f"{task} (n={s['n']}): gold {s['gold']} · baseline picks {s['baseline_picks']} · "
              f"candidate picks {s['candidate_picks']} · same pick {s['same_pick']}/{s['n']} · "
              f"always-majority acc {s['majority_class_acc']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
