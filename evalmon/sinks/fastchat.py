"""An MT-Bench run as FastChat ``model_judgment`` files (``evalmon export RUN --format fastchat``).

FastChat's ``gen_judgment.py`` appends one JSON line per (question, turn) to
``data/mt_bench/model_judgment/<judge>_single.jsonl`` (``play_a_match_single``: ``question_id``, ``model``,
``judge`` = [judge model, judge prompt name], ``user_prompt``, ``judgment``, ``score`` (-1 when no rating
parsed), ``turn``, ``tstamp``) or ``<judge>_pair.jsonl`` (``play_a_match_pair``: ``model_1``, ``model_2``,
``g1_winner``/``g2_winner`` in {model_1, model_2, tie, error}, ``g1_user_prompt``, ``g1_judgment``,
``g2_…``). FastChat's ``show_result.py`` reads those files; so does anything built on them.

Written from the run's ``samples.jsonl.gz``: each MT-Bench sample's ``extra.turns`` holds the judge prompt
name, the judge's raw outputs and parsed verdicts (and, from this version on, ``user_prompts``; older runs
export an empty ``user_prompt``). The judge model is the task's ``judge_fingerprint``; the answering model
is the sample's ``model_id`` (and ``baseline_id`` for pairwise). ``tstamp`` is the run's end time.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from evalmon.core.errors import ConfigError
from evalmon.core.results import RunResult, SampleRecord, atomic_write

FOLDER = Path("mt_bench") / "model_judgment"
_GAME1 = {"A": "model_1", "B": "model_2", "tie": "tie"}  # game 1: the model is A
_GAME2 = {"A": "model_2", "B": "model_1", "tie": "tie"}  # game 2: positions swapped


def _qid(doc_id: str) -> int | str:
    return int(doc_id) if doc_id.lstrip("-").isdigit() else doc_id


def _judge(result: RunResult, task: str) -> str:
    fp = result.tasks[task].config.get("judge_fingerprint") or {}
    return Path(str(fp.get("model") or "judge")).name


def _winner(verdict: dict[str, Any], mapping: dict[str, str]) -> str:
    return "error" if verdict.get("error") is not None else mapping.get(str(verdict.get("value")), "error")


def _single(s: SampleRecord, judge: str, tstamp: float) -> list[dict[str, Any]]:
    rows = []
    for t in s.extra.get("turns", []):
        v = t["verdicts"][0]
        score = v["value"] if v.get("error") is None and v.get("value") is not None else -1
        rows.append({"question_id": _qid(s.doc_id), "model": s.extra.get("model_id"),
                     "judge": [judge, t["prompt"]], "user_prompt": (t.get("user_prompts") or [""])[0],
                     "judgment": t["judge_outputs"][0], "score": score, "turn": t["turn"], "tstamp": tstamp})
    return rows


def _pair(s: SampleRecord, judge: str, tstamp: float) -> list[dict[str, Any]]:
    rows = []
    for t in s.extra.get("turns", []):
        prompts = t.get("user_prompts") or ["", ""]
        rows.append({"question_id": _qid(s.doc_id), "model_1": s.extra.get("model_id"),
                     "model_2": s.extra.get("baseline_id"),
                     "g1_winner": _winner(t["verdicts"][0], _GAME1), "g2_winner": _winner(t["verdicts"][1], _GAME2),
                     "judge": [judge, t["prompt"]],
                     "g1_user_prompt": prompts[0], "g1_judgment": t["judge_outputs"][0],
                     "g2_user_prompt": prompts[1], "g2_judgment": t["judge_outputs"][1],
                     "turn": t["turn"], "tstamp": tstamp})
    return rows


def _is_mtbench(s: SampleRecord) -> bool:
    return s.extra.get("mode") in ("single", "pairwise") and isinstance(s.extra.get("turns"), list)


def write_fastchat(result: RunResult, samples: list[SampleRecord] | None, out_dir: Path) -> list[Path]:
    """``out_dir/mt_bench/model_judgment/<judge>_{single,pair}.jsonl`` for the run's MT-Bench tasks."""
    rows_by_file: dict[Path, list[dict[str, Any]]] = {}
    finished = result.finished_at or result.started_at
    tstamp = datetime.fromisoformat(finished).timestamp()
    for s in samples or []:
        if s.task not in result.tasks or not _is_mtbench(s):
            continue
        judge = _judge(result, s.task)
        pairwise = s.extra["mode"] == "pairwise"
        path = Path(out_dir).expanduser() / FOLDER / f"{judge}_{'pair' if pairwise else 'single'}.jsonl"
        rows_by_file.setdefault(path, []).extend((_pair if pairwise else _single)(s, judge, tstamp))
    if not rows_by_file:
        raise ConfigError(f"run {result.run_id} has no MT-Bench samples to export as FastChat judgments",
                          hint="--format fastchat needs an mtbench task run with its samples.jsonl.gz")
    for path, rows in rows_by_file.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {out_dir}: cannot create {path.parent} ({exc.strerror or exc})",
                              hint="pass a writable directory") from None
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        atomic_write(path, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    return sorted(rows_by_file)
