"""Many adapters on one loaded base (backends/hf/adapters.py): switching adapters gives exactly the numbers of
separate ``adapter: path`` loads (packed scoring included), fingerprints equal those loads' (so the response
cache is shared with them and kept apart per adapter), and a bad adapter is one line before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from adapters_util import make_lora

from evalmon.backends.hf.adapters import HFAdapterSet
from evalmon.backends.hf.model import HFCausalLM, HFSettings
from evalmon.core.errors import ModelError
from evalmon.core.lm import CAPABILITIES, LLRequest, RollingRequest

REQS = [LLRequest("The quick brown fox", " jumps over the dog"), LLRequest("The quick brown fox", " sleeps"),
        LLRequest("The quick brown fox jumps", " over"), LLRequest("", "hello world"),
        LLRequest("Question: what is two plus two?\nAnswer:", " four")]


@pytest.fixture(scope="module")
def two_loras(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {"a": make_lora(tiny_checkpoint, root / "a", 11), "b": make_lora(tiny_checkpoint, root / "b", 12)}


@pytest.mark.accuracy
def test_switching_adapters_equals_separate_loads(tiny_checkpoint: Path, two_loras: dict[str, Path]) -> None:
    one = HFAdapterSet(HFSettings(path=str(tiny_checkpoint)), {k: str(v) for k, v in two_loras.items()})
    assert one.lm.scoring == "packed" and {"adapters"} <= one.capabilities <= CAPABILITIES
    separate = {None: HFCausalLM(HFSettings(path=str(tiny_checkpoint)))}
    separate.update({k: HFCausalLM(HFSettings(path=str(tiny_checkpoint), adapter=str(v))) for k, v in two_loras.items()})
    expected = {k: [r.logprob for r in lm.loglikelihood(REQS)] for k, lm in separate.items()}
    assert expected["a"] != expected[None] and expected["a"] != expected["b"], "the adapters change nothing"
    for name in ["a", None, "b", "a", None]:  # any order: switching back and forth never leaks an adapter
        got = [r.logprob for r in one.variant(name).loglikelihood(REQS)]
        assert max(abs(g - e) for g, e in zip(got, expected[name], strict=True)) <= 1e-5, name
        # the fingerprint (what the response cache is keyed on) is that of the separate load
        assert one.variant(name).fingerprint.cache_key() == separate[name].fingerprint.cache_key(), name
    rolling = [RollingRequest("the cat sat on the mat " * 5)]
    assert (one.variant("b").loglikelihood_rolling(rolling)[0].logprob
            == pytest.approx(separate["b"].loglikelihood_rolling(rolling)[0].logprob, abs=1e-5))
    keys = {one.variant(n).fingerprint.cache_key() for n in (None, "a", "b")}
    assert len(keys) == 3 and one.fingerprint.cache_key() == separate[None].fingerprint.cache_key()
    assert one.variant("base") is one.variant(None)
    fp = one.variant("a").fingerprint
    assert Path(fp.adapter or "") == two_loras["a"].resolve() and fp.adapter_hash and fp.adapter_config_hash


@pytest.mark.accuracy
def test_adapter_config_is_part_of_the_identity(tiny_checkpoint: Path, two_loras: dict[str, Path],
                                                tmp_path: Path) -> None:
    """Same weights, another lora_alpha: other numbers, so another cache key (not only the weights' hash)."""
    copy = Path(shutil.copytree(two_loras["a"], tmp_path / "a-alpha16"))
    cfg = json.loads((copy / "adapter_config.json").read_text())
    (copy / "adapter_config.json").write_text(json.dumps({**cfg, "lora_alpha": 16}))
    one = HFAdapterSet(HFSettings(path=str(tiny_checkpoint)), {"a": str(two_loras["a"]), "a16": str(copy)})
    fa, f16 = one.variant("a").fingerprint, one.variant("a16").fingerprint
    assert fa.adapter_hash == f16.adapter_hash and fa.adapter_config_hash != f16.adapter_config_hash
    assert fa.cache_key() != f16.cache_key()
    assert one.variant("a").loglikelihood(REQS[:1])[0].logprob != one.variant("a16").loglikelihood(REQS[:1])[0].logprob


@pytest.mark.accuracy
def test_bad_adapters_fail_in_one_line(tiny_checkpoint: Path, two_loras: dict[str, Path], mismatched_lora: Path,
                                       tmp_path: Path) -> None:
    base = HFSettings(path=str(tiny_checkpoint))
    with pytest.raises(ModelError) as exc:
        HFAdapterSet(base, {"a": str(two_loras["a"]), "wide": str(mismatched_lora)})
    line = exc.value.one_line()
    assert line.startswith("model.adapters.wide: adapter ") and "does not match the base model" in line
    assert "\n" not in line
    with pytest.raises(ModelError, match=r"^model.adapters.x: no adapter_config.json in "):
        HFAdapterSet(base, {"x": str(tmp_path)})
