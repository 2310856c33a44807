"""Judge–human agreement as defined in "Judging LLM-as-a-Judge" (Zheng et al. 2023, §4.2, Table 2).

Agreement between two types of judges = the probability that randomly selected (non-identical)
individuals of each type agree on a randomly selected question, computed as FastChat's
``compute_agreement.py`` does: over every (question, model pair, turn) both judged, each judge vote is
compared with each human vote (human–human: every pair of different human votes on the same item).

* S1 "with ties": all votes; an LLM judge's inconsistent position-swapped verdicts count as ties.
* S2 "without ties": only pairs where neither vote is a tie (inconsistent included).

Random judges agree 33% (S1) / 50% (S2) of the time. Votes are ``model_a`` / ``model_b`` / ``tie`` /
``tie (inconsistent)`` on keys ``(question_id, model_a, model_b, turn)`` with the two model names sorted.

Sources: the PRD data (Li et al. 2023, ``judge_agreement_prd/vicuna80``: human three-class votes and
stored GPT-4/Claude/GPT-3.5/Bard/Vicuna reviews of both answer orders), FastChat-style vote JSONL
(``{question_id, model_a, model_b, winner, turn}``, e.g. MT-Bench human judgments), or an evalmon
``mtbench`` pairwise run directory (its judge's verdicts from samples.jsonl.gz).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from evalmon.core.errors import DataError
from evalmon.core.jsonout import to_json as strict_json
from evalmon.data.local import malformed, read_jsonl

Key = tuple[str, str, str, int]
Votes = dict[Key, list[str]]
Position = Literal["swap", "as-shown"]
INCONSISTENT = "tie (inconsistent)"
_PRD_SCORE = {1: "first", 2: "second", 3: "tie"}
_WINNERS = {"model_a", "model_b", "tie", INCONSISTENT}


def _flip(vote: str) -> str:
    return {"model_a": "model_b", "model_b": "model_a"}.get(vote, vote)


def normalise(qid: object, model_a: str, model_b: str, winner: str, turn: int = 1, *, keep_order: bool = False
              ) -> tuple[Key, str]:
    """Key with sorted model names (FastChat's rule) and the vote re-expressed for that order."""
    if winner not in _WINNERS:
        winner = INCONSISTENT if winner == "inconsistent" else winner
    if winner not in _WINNERS:
        raise ValueError(f"unknown winner {winner!r}")
    if keep_order or model_a < model_b:
        return (str(qid), model_a, model_b, int(turn)), winner
    return (str(qid), model_b, model_a, int(turn)), _flip(winner)


def is_tie(vote: str) -> bool:
    return "tie" in vote  # FastChat convertvote: "tie (inconsistent)" is a tie


def agree(v1: str, v2: str) -> bool:
    return (is_tie(v1) and is_tie(v2)) or v1 == v2  # FastChat equalvote


def judge_vs_human(judge: Mapping[Key, Sequence[str]], human: Mapping[Key, Sequence[str]], *, ties: bool
                   ) -> tuple[int, int]:
    """(#agree, #pairs) over items both judged; one judge vote per item against each human vote."""
    n_agree = total = 0
    for key, jv in judge.items():
        if key not in human:
            continue
        if len(jv) != 1:
            raise DataError(f"judge has {len(jv)} votes for {key}; agreement needs one verdict per item")
        if not ties and is_tie(jv[0]):
            continue
        for hv in human[key]:
            if not ties and is_tie(hv):
                continue
            total += 1
            n_agree += agree(jv[0], hv)
    return n_agree, total


def human_vs_human(human: Mapping[Key, Sequence[str]], *, ties: bool) -> tuple[int, int]:
    n_agree = total = 0
    for votes in human.values():
        for i in range(len(votes) - 1):
            for j in range(i + 1, len(votes)):
                if not ties and (is_tie(votes[i]) or is_tie(votes[j])):
                    continue
                total += 1
                n_agree += agree(votes[i], votes[j])
    return n_agree, total


@dataclass(frozen=True)
class AgreementRow:
    judge: str
    versus: str
    setup: str  # "S1" (with ties) | "S2" (without ties)
    turn: int
    agree: int
    total: int

    @property
    def ratio(self) -> float | None:
        return self.agree / self.total if self.total else None

    def to_dict(self) -> dict[str, object]:
        return {"judge": self.judge, "versus": self.versus, "setup": self.setup, "turn": self.turn,
                "agree": self.agree, "total": self.total, "ratio": self.ratio}


@dataclass
class AgreementReport:
    rows: list[AgreementRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""
    position: str = "swap"

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "position": self.position, "notes": self.notes,
                "rows": [r.to_dict() for r in self.rows]}


def _by_turn(votes: Mapping[Key, Sequence[str]], turn: int) -> dict[Key, Sequence[str]]:
    return {k: v for k, v in votes.items() if k[3] == turn}


def compare(judges: Mapping[str, Votes], human: Votes, *, source: str = "", position: str = "swap",
            include_human: bool = True) -> AgreementReport:
    """S1/S2 agreement of every judge with the human votes (and human–human), per turn."""
    report = AgreementReport(source=source, position=position)
    for turn in sorted({k[3] for k in human}):
        h = _by_turn(human, turn)
        for name, votes in judges.items():
            j = _by_turn(votes, turn)
            for setup, ties in (("S1", True), ("S2", False)):
                report.rows.append(AgreementRow(name, "human", setup, turn, *judge_vs_human(j, h, ties=ties)))
        if include_human:
            for setup, ties in (("S1", True), ("S2", False)):
                report.rows.append(AgreementRow("human", "human", setup, turn, *human_vs_human(h, ties=ties)))
    return report


# --------------------------------------------------------------------------- PRD (Vicuna80) loader

_PRD_NAME = r"answer[_-](?P<a>.+?)-vs-answer[_-](?P<b>.+)-{reviewer}-reviewer(?:[_-]threeclass)?\.jsonl"


def prd_reviewers(root: Path) -> list[str]:
    base = Path(root) / "vicuna80"
    return sorted(p.name.removeprefix("ratings-") for p in base.glob("ratings-*") if p.is_dir())


def load_prd_ratings(root: Path, reviewer: str, notes: list[str] | None = None
                     ) -> dict[tuple[str, str], dict[str, list[int]]]:
    """``{(first_model, second_model): {question_id: [score, ...]}}`` for one reviewer directory.

    When two files hold the same ordered pair (GPT-3.5 has ``answer-x-vs-answer-y`` reruns next to
    ``answer_x-vs-answer_y``), the underscore-named one is used and the other is noted.
    """
    d = Path(root) / "vicuna80" / f"ratings-{reviewer}"
    if not d.is_dir():
        raise DataError(f"judge agreement: no reviewer directory {d}",
                        hint=f"reviewers here: {', '.join(prd_reviewers(root)) or 'none'}")
    pattern = re.compile(_PRD_NAME.format(reviewer=re.escape(reviewer)))
    chosen: dict[tuple[str, str], Path] = {}
    for f in sorted(d.glob("*.jsonl"), key=lambda p: (not p.name.startswith("answer_"), p.name)):
        m = pattern.fullmatch(f.name)
        if m is None:
            raise DataError(f"judge agreement: cannot read the model pair from file name {f}")
        pair = (m.group("a"), m.group("b"))
        if pair in chosen:
            if notes is not None:
                notes.append(f"{reviewer}: {f.name} duplicates {chosen[pair].name} (same pair and order); not used")
            continue
        chosen[pair] = f
    out: dict[tuple[str, str], dict[str, list[int]]] = {}
    for pair, f in chosen.items():
        per_q: dict[str, list[int]] = defaultdict(list)
        for lineno, row in read_jsonl(f):
            try:
                per_q[str(row["question_id"])].append(int(row["score"]))
            except (KeyError, TypeError, ValueError) as e:
                raise malformed(f, f"line {lineno}", f"vote without question_id/score ({e})") from None
        out[pair] = dict(per_q)
    return out


def _prd_vote(score: int) -> str | None:
    pos = _PRD_SCORE.get(score)
    return None if pos is None else {"first": "model_a", "second": "model_b", "tie": "tie"}[pos]


def prd_human_votes(root: Path, position: Position = "swap") -> Votes:
    votes: Votes = defaultdict(list)
    for (a, b), per_q in load_prd_ratings(root, "human").items():
        for qid, scores in per_q.items():
            for s in scores:
                v = _prd_vote(s)
                if v is not None:
                    key, vote = normalise(qid, a, b, v, keep_order=position == "as-shown")
                    votes[key].append(vote)
    return dict(votes)


def prd_judge_votes(root: Path, reviewer: str, position: Position = "swap", notes: list[str] | None = None
                    ) -> Votes:
    """One verdict per item: with ``swap`` the two answer orders are combined (disagreement → inconsistent
    tie, as MT-Bench's GPT-4 pair judge); with ``as-shown`` each order is its own item."""
    ratings = load_prd_ratings(root, reviewer, notes)
    per_order: dict[Key, str] = {}
    for (a, b), per_q in ratings.items():
        for qid, scores in per_q.items():
            v = _prd_vote(scores[0])
            if v is not None:
                key, vote = normalise(qid, a, b, v, keep_order=True)
                per_order[key] = vote
    if position == "as-shown":
        return {k: [v] for k, v in per_order.items()}
    out: Votes = {}
    for (qid, a, b, turn), vote in per_order.items():
        if a > b:
            continue
        other = per_order.get((qid, b, a, turn))
        if other is None:
            continue
        swapped = _flip(other)
        out[(qid, a, b, turn)] = [vote if vote == swapped else INCONSISTENT]
    return out


def prd_report(root: Path, judges: Sequence[str] | None = None, position: Position = "swap") -> AgreementReport:
    root = Path(root)
    if not (root / "vicuna80" / "ratings-human").is_dir():
        raise DataError(f"judge agreement: {root} has no vicuna80/ratings-human/",
                        hint="point --prd at the judge_agreement_prd directory (PRD data)")
    notes: list[str] = []
    names = list(judges) if judges else [r for r in prd_reviewers(root) if r != "human"]
    human = prd_human_votes(root, position)
    judge_votes = {name: prd_judge_votes(root, name, position, notes) for name in names}
    report = compare(judge_votes, human, source=str(root), position=position)
    report.notes.extend(notes)
    return report


# --------------------------------------------------------------------------- generic vote files


def load_vote_file(path: Path, judge: str | None = None) -> Votes:
    """FastChat-style JSONL ``{question_id, model_a, model_b, winner, turn?, judge?}``, or an evalmon
    mtbench pairwise run directory / samples.jsonl.gz (the run's judge verdicts)."""
    path = Path(path)
    if path.is_dir() or path.name.endswith(".jsonl.gz"):
        return votes_from_run(path)
    if not path.is_file():
        raise DataError(f"judge agreement: vote file not found: {path}")
    votes: Votes = defaultdict(list)
    for lineno, row in read_jsonl(path):
        if isinstance(row, dict) and judge is not None and str(row.get("judge")) != judge:
            continue
        try:
            key, vote = normalise(row["question_id"], row["model_a"], row["model_b"], row["winner"],
                                  _turn(row.get("turn", 1)))
        except (KeyError, TypeError, ValueError) as e:
            raise malformed(path, f"line {lineno}", f"not a pairwise vote ({e})") from None
        votes[key].append(vote)
    if not votes:
        raise DataError(f"judge agreement: {path} holds no votes" + (f" by judge {judge!r}" if judge else ""),
                        hint="one JSON object per line: {question_id, model_a, model_b, winner, turn}")
    return dict(votes)


def _turn(value: object) -> int:
    """A vote's turn: a positive integer (``2``, ``2.0`` or ``"2"``), never a bool, a fraction or inf."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"turn must be a positive integer, got {value!r}")
    return value


def compare_files(judge_path: Path, human_path: Path) -> AgreementReport:
    """Agreement of the votes in ``judge_path`` with those in ``human_path`` (same format, or a run dir for the
    judge) on the items both voted on; no shared item is an error, items only one side voted on are noted."""
    judge, human = load_vote_file(judge_path), load_vote_file(human_path)
    name = Path(judge_path).name
    shared = judge.keys() & human.keys()
    if not shared:
        raise DataError(f"judge agreement: {judge_path} and {human_path} share no (question_id, model pair, turn): "
                        f"nothing to compare", hint="check that both files vote on the same questions, model names "
                                                    "and turns")
    report = compare({name: judge}, human, source=f"{human_path} vs {judge_path}", position="as given")
    if len(judge) > len(shared):
        report.notes.append(f"{len(judge) - len(shared)} of the {len(judge)} items {name} votes on have no human "
                            f"vote: left out")
    if len(human) > len(shared):
        report.notes.append(f"{len(human) - len(shared)} of the {len(human)} items with human votes have no {name} "
                            f"vote: left out of the judge rows")
    return report


def votes_from_run(path: Path) -> Votes:
    from evalmon.core.results import SAMPLES_FILE, read_samples

    p = path / SAMPLES_FILE if path.is_dir() else path
    if not p.is_file():
        raise DataError(f"judge agreement: no {SAMPLES_FILE} in {path}")
    votes: Votes = {}
    for s in read_samples(p):
        extra = s.extra or {}
        if s.task != "mtbench" or extra.get("mode") != "pairwise":
            continue
        model, base = str(extra.get("model_id")), str(extra.get("baseline_id"))
        for t in extra.get("turns", []):
            winner = {"win": "model_a", "loss": "model_b"}.get(t.get("outcome"))
            if t.get("outcome") == "tie":
                winner = INCONSISTENT if t.get("inconsistent") else "tie"
            if winner is None:
                continue
            key, vote = normalise(s.doc_id, model, base, winner, int(t.get("turn", 1)))
            votes[key] = [vote]
    if not votes:
        raise DataError(f"judge agreement: {p} holds no judged mtbench pairwise samples")
    return votes


# --------------------------------------------------------------------------- rendering


def to_markdown(report: AgreementReport) -> str:
    lines = [f"Agreement with human votes ({report.position} positions; S1 = with ties, S2 = without ties)", "",
             "| judge | vs | turn | S1 agree/total | S1 | S2 agree/total | S2 |", "|---|---|---|---|---|---|---|"]
    for judge, versus, turn, s1, s2 in paired_rows(report.rows):
        lines.append(f"| {judge} | {versus} | {turn} | {s1.agree}/{s1.total} | {pct(s1.ratio)} | "
                     f"{s2.agree}/{s2.total} | {pct(s2.ratio)} |")
    if report.notes:
        lines += ["", *[f"- {n}" for n in report.notes]]
    return "\n".join(lines) + "\n"


def to_json(report: AgreementReport) -> str:
    return strict_json(report.to_dict())


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def paired_rows(rows: Iterable[AgreementRow]) -> list[tuple[str, str, int, AgreementRow, AgreementRow]]:
    by: dict[tuple[str, str, int], dict[str, AgreementRow]] = defaultdict(dict)
    for r in rows:
        by[(r.judge, r.versus, r.turn)][r.setup] = r
    return [(j, v, t, d["S1"], d["S2"]) for (j, v, t), d in by.items() if "S1" in d and "S2" in d]
