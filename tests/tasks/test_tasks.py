"""Task loaders against the real benchmark mirror (../shared/benchmarks): counts, golds, prompts, errors."""

from __future__ import annotations

import bz2
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from evalmon.core.errors import ConfigError, DataError, UnknownNameError
from evalmon.tasks.base import (
    GROUPS,
    TASKS,
    MultipleChoiceTask,
    TaskOptions,
    all_names,
    build_task,
    expand,
    get_task_info,
)

BENCH = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"
needs_data = pytest.mark.usefixtures("benchmarks_dir")  # missing data fails, never skips

COUNTS = {
    "mmlu_anatomy": 135,
    "mmlu_clinical_knowledge": 265,
    "mmlu_college_medicine": 173,
    "mmlu_professional_medicine": 272,
    "hellaswag": 10042,
    "truthfulqa_mc1": 817,
    "truthfulqa_mc2": 817,
    "medqa": 1273,
    "medmcqa": 4183,
    "pubmedqa": 500,
}


def build(name: str, **kw: object) -> MultipleChoiceTask:
    task = build_task(name, TaskOptions(data_dir=kw.pop("data_dir", BENCH), **kw))  # type: ignore[arg-type]
    assert isinstance(task, MultipleChoiceTask)
    return task


@needs_data
@pytest.mark.parametrize("name", sorted(COUNTS))
def test_row_counts_golds_and_ids(name: str) -> None:
    task = build(name)
    docs = task.docs()
    assert len(docs) == COUNTS[name]
    assert all(0 <= d.gold < len(d.choices) for d in docs)
    assert len({d.id for d in docs}) == len(docs)  # ids unique
    assert build(name).docs()[3].id == docs[3].id  # and stable
    reqs = task.requests(docs[0])
    assert [r.continuation for r in reqs] == [" " + c for c in docs[0].choices]
    assert {r.context for r in reqs} == {task.context(docs[0])}
    assert task.source.startswith(str(BENCH))


@needs_data
def test_mmlu_all_subjects_total() -> None:
    subjects = expand("mmlu")
    assert len(subjects) == 57
    assert sum(len(build(s, num_fewshot=0).docs()) for s in subjects) == 14042


@needs_data
def test_gold_distributions_match_source_md() -> None:
    # medmcqa cop is 1-based in the file (1:1348 …) → gold 0 must be 1348 (off-by-one guard)
    assert Counter(d.gold for d in build("medmcqa").docs()) == {0: 1348, 1: 1085, 2: 925, 3: 825}
    assert Counter(d.gold for d in build("medqa").docs()) == {0: 353, 1: 309, 2: 346, 3: 265}
    assert Counter(d.choices[d.gold] for d in build("pubmedqa").docs()) == {
        "yes": 276,
        "no": 169,
        "maybe": 55,
    }


@needs_data
def test_mmlu_five_shot_context() -> None:
    task = build("mmlu_anatomy")
    assert task.num_fewshot == 5 == get_task_info("mmlu_anatomy").default_fewshot
    doc = task.docs()[0]
    ctx = task.context(doc)
    desc = "The following are multiple choice questions (with answers) about anatomy.\n\n"
    assert ctx.startswith(desc)
    assert len(re.findall(r"\nAnswer: [ABCD]\n\n", ctx)) == 5
    assert ctx.endswith(doc.query)
    assert doc.query.endswith(
        "\nA. paralysis of the facial muscles.\nB. paralysis of the facial muscles and loss "
        "of taste.\nC. paralysis of the facial muscles, loss of taste and lacrimation.\nD. "
        "paralysis of the facial muscles, loss of taste, lacrimation and decreased "
        "salivation.\nAnswer:"
    )
    # the first shot is the first dev row (first_n); answer D
    assert ctx[len(desc) :].startswith(
        "What is the embryological origin of the hyoid bone?\nA. The first pharyngeal"
    )
    assert task.config()["fewshot_ids"] == [f"anatomy/dev/{i}" for i in range(5)]
    # description with underscores → spaces, also at 0-shot
    zero = build("mmlu_college_medicine", num_fewshot=0)
    assert zero.context(zero.docs()[0]) == (
        "The following are multiple choice questions (with answers) about college medicine.\n\n"
        + zero.docs()[0].query
    )
    assert "Answer: " not in zero.context(zero.docs()[0])
    three = build("mmlu_anatomy", num_fewshot=3)
    assert len(re.findall(r"\nAnswer: [ABCD]\n\n", three.context(doc))) == 3


@needs_data
def test_mmlu_fewshot_out_of_range() -> None:
    with pytest.raises(ConfigError, match=r"0\.\.5"):
        build("mmlu_anatomy", num_fewshot=6)


@needs_data
@pytest.mark.parametrize(
    "name", ["hellaswag", "truthfulqa_mc1", "truthfulqa_mc2", "medqa", "medmcqa", "pubmedqa"]
)
def test_zero_shot_only_tasks(name: str) -> None:
    assert build(name, num_fewshot=0).num_fewshot == 0
    with pytest.raises(ConfigError, match=f"{name} supports num_fewshot=0 only"):
        build(name, num_fewshot=2)


@needs_data
@pytest.mark.parametrize("name", ["mmlu_anatomy", "hellaswag", "truthfulqa_mc2", "medmcqa", "pubmedqa"])
def test_limit_takes_first_n(name: str) -> None:
    full = build(name).docs()
    limited = build(name, limit=7).docs()
    assert [d.id for d in limited] == [d.id for d in full[:7]]
    assert build(name, limit=0).docs() == ()


@needs_data
def test_hellaswag_local_mapping() -> None:
    doc = build("hellaswag", limit=1).docs()[0]
    # ctx_b is lost in the text export → not capitalised (lm-eval on the hub would give "… roof. He")
    assert doc.query == "Roof shingle removal: A man is sitting on a roof. he"
    assert doc.choices[3] == "starts pulling up roofing on a roof."
    assert doc.gold == 3


@needs_data
def test_truthfulqa_prompt_and_labels() -> None:
    mc1, mc2 = build("truthfulqa_mc1", limit=3), build("truthfulqa_mc2", limit=3)
    d1, d2 = mc1.docs()[0], mc2.docs()[0]
    assert d1.query.startswith("Q: What is human life expectancy in the United States?\nA: Human life")
    assert d1.query.endswith("\n\nQ: What happens if you eat a pomegranate?\nA:")
    assert d1.gold == d2.gold == 0 and d1.choices[0] == d2.choices[0]
    assert d2.labels == (1, 1, 1, 0, 0, 0) and len(d2.choices) == 6
    assert mc1.metrics.keys() == {"mc1"} and mc2.metrics.keys() == {"mc2"}


def test_unknown_task_did_you_mean() -> None:
    with pytest.raises(UnknownNameError, match="did you mean: mmlu_anatomy"):
        build_task("mmlu_anatomyy", TaskOptions())
    with pytest.raises(UnknownNameError, match="hellaswag"):
        expand("hellaswg")


def test_groups_expand() -> None:
    assert len(expand("mmlu")) == 57 == len(set(expand("mmlu")))
    assert sorted(expand("mmlu_medical")) == sorted(
        f"mmlu_{s}"
        for s in (
            "anatomy",
            "clinical_knowledge",
            "college_biology",
            "college_medicine",
            "medical_genetics",
            "professional_medicine",
            "nutrition",
            "virology",
            "high_school_biology",
        )
    )
    cats = {c: len(expand(f"mmlu_{c}")) for c in ("stem", "other", "social_sciences", "humanities")}
    assert cats == {"stem": 19, "other": 13, "social_sciences": 12, "humanities": 13}
    assert GROUPS["mmlu"].metrics == ("acc",)
    for name in ("hellaswag", "truthfulqa_mc1", "truthfulqa_mc2", "medqa", "medmcqa", "pubmedqa"):
        assert name in all_names()
        info = TASKS[name]
        assert info.local_source and info.hub_source
    assert build_task.__module__ == "evalmon.tasks.base"


def test_medqa_records_lm_eval_name(tmp_path: Path) -> None:
    (tmp_path / "medqa").mkdir()
    rec = {"question": "Q?", "options": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer_idx": "C"}
    (tmp_path / "medqa" / "phrases_no_exclude_test.jsonl").write_text(json.dumps(rec) + "\n")
    task = build("medqa", data_dir=tmp_path)
    assert task.lm_eval_task == "medqa_4options"
    assert task.docs()[0].query == "Question: Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    assert task.docs()[0].gold == 2


# ------------------------------------------------------------------------------------------ errors


def test_missing_data_dir_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as e:
        build("mmlu_anatomy", data_dir=missing)
    assert str(missing / "mmlu" / "test" / "anatomy_test.csv") in str(e.value)
    assert "data.data_dir" in str(e.value)


@pytest.mark.parametrize(
    ("name", "rel"),
    [
        ("mmlu_anatomy", "mmlu/test/anatomy_test.csv"),
        ("hellaswag", "hellaswag/klosax-hellaswag_text_data/hellaswag_val_full.txt.bz2"),
        ("truthfulqa_mc1", "truthfulqa/data/mc_task.json"),
        ("medqa", "medqa/phrases_no_exclude_test.jsonl"),
        ("medmcqa", "medmcqa/dev.json"),
        ("pubmedqa", "pubmedqa/test_set.json"),
    ],
)
def test_missing_file_names_path(tmp_path: Path, name: str, rel: str) -> None:
    with pytest.raises(DataError, match=re.escape(str(tmp_path / rel))):
        build(name, data_dir=tmp_path)


def _write(root: Path, rel: str, data: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "rel", "content", "where"),
    [
        ("mmlu_anatomy", "mmlu/test/anatomy_test.csv", 'q1,a,b,c,d,A\n"multi\nline q",a,b,c,d\n', "line 2"),
        ("mmlu_anatomy", "mmlu/test/anatomy_test.csv", "q1,a,b,c,d,E\n", "line 1"),
        (
            "medmcqa",
            "medmcqa/dev.json",
            '{"question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", '
            '"cop": 1, "id": "x"}\n{not json\n',
            "line 2",
        ),
        (
            "medmcqa",
            "medmcqa/dev.json",
            '{"question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0, "id": "x"}\n',
            "line 1",
        ),
        (
            "medqa",
            "medqa/phrases_no_exclude_test.jsonl",
            '{"question": "q", "options": {"A": "a"}, "answer_idx": "A"}\n',
            "line 1",
        ),
        (
            "pubmedqa",
            "pubmedqa/test_set.json",
            '{"1": {"QUESTION": "q", "CONTEXTS": [], "final_decision": "perhaps"}}',
            "record 1",
        ),
        ("truthfulqa_mc2", "truthfulqa/data/mc_task.json", '{"question": "q"}', "top level"),
        (
            "truthfulqa_mc2",
            "truthfulqa/data/mc_task.json",
            '[{"question": "q", "mc1_targets": {"a": 1}, "mc2_targets": {"a": 2}}]',
            "item 0",
        ),
        (
            "hellaswag",
            "hellaswag/klosax-hellaswag_text_data/hellaswag_val_full.txt.bz2",
            bz2.compress(b"Act: ctx\n1\ne0\ne1\ne2\n"),
            "line 5",
        ),
        (
            "hellaswag",
            "hellaswag/klosax-hellaswag_text_data/hellaswag_val_full.txt.bz2",
            bz2.compress(b"Act: ctx\n7\ne0\ne1\ne2\ne3\n"),
            "line 2",
        ),
        (
            "hellaswag",
            "hellaswag/klosax-hellaswag_text_data/hellaswag_val_full.txt.bz2",
            b"not bz2 at all",
            "0",
        ),
    ],
)
def test_malformed_file_names_file_and_line(
    tmp_path: Path, name: str, rel: str, content: str | bytes, where: str
) -> None:
    path = _write(tmp_path, rel, content)
    with pytest.raises(DataError) as e:
        build(name, data_dir=tmp_path)
    assert f"{path}:{where}" in str(e.value)


# --------------------------------------------------------------------------------------------- hub


def test_hub_offline_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets  # imported before the flag is set: evalmon must not go online anyway

    assert datasets is not None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        build("mmlu_anatomy", data_dir=None)
    msg = str(e.value)
    assert "hub is unreachable" in msg and "cais/mmlu" in msg and "data.data_dir" in msg
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_hub_offline_fresh_process_one_line_error() -> None:
    code = (
        "from evalmon.tasks.base import build_task, TaskOptions\n"
        "from evalmon.core.errors import DataError\n"
        "try:\n    build_task('medmcqa', TaskOptions())\n"
        "except DataError as e:\n    print('ERR', e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith("ERR medmcqa: the Hugging Face hub is unreachable for openlifescienceai/medmcqa")
    assert "\n" not in line and "data.data_dir" in line
