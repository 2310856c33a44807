"""``uncertainty`` + ``halludetect`` (v1) on one proxy model: one shared token-log-prob pass vs two.

    .venv/bin/python benchmarks/bench_proxy_share.py [--rows 200] [--shared-first]

Scores the first ``--rows`` HaluEval QA rows (``../shared/benchmarks/halueval``: question + right answer, MIT)
with both signals under the embedded SmolLM2-135M-Instruct, twice: with the same proxy model config (the second
signal reads the first's call, ``ProxyUncertaintySignal.token_logprobs``) and with configs that differ only in
spelling (``backend: hf`` written out: nothing shared, as before the sharing). Prints wall and CPU seconds of
each (model loads and MiniLM included; the first pass also pays the one-time MiniLM load, hence
``--shared-first`` to swap the order) and checks that the 9 signal columns are bit-identical.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from evalmon.monitor.signals import build_signals, compute_signals

DATA = Path("../shared/benchmarks/halueval/generation/qa/qa_one-turn_data.json")
CHECKPOINT = Path(".evalmon/checkpoints/smollm2-135m-instruct")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--shared-first", action="store_true")
    args = ap.parse_args()
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()[: args.rows]]
    frame = pd.DataFrame({"prompt": [r["question"] for r in rows], "response": [r["right_answer"] for r in rows]})
    ckpt = str(CHECKPOINT.resolve())
    out: dict[bool, pd.DataFrame] = {}
    for shared in (True, False) if args.shared_first else (False, True):
        detector_model = {"path": ckpt} if shared else {"path": ckpt, "backend": "hf"}  # another key: not shared
        signals = build_signals([{"name": "uncertainty", "model": {"path": ckpt}},
                                 {"name": "halludetect", "uncertainty": {"model": detector_model}}])
        t0, c0 = time.perf_counter(), time.process_time()
        out[shared] = compute_signals(frame, signals)
        print(f"{'shared' if shared else 'separate'}: {time.perf_counter() - t0:.1f} s wall, "
              f"{time.process_time() - c0:.1f} s CPU ({len(frame)} records)", flush=True)
    cols = [c for c in out[True].columns if c.startswith(("uncertainty.", "halludetect."))]
    pd.testing.assert_frame_equal(out[True][cols], out[False][cols], check_exact=True)
    print(f"bit-identical: {len(cols)} columns")


if __name__ == "__main__":
    main()
