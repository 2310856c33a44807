"""``convert.parsed_once``: one parse of a GGUF file shared by every ``gguf.GGUFReader(path)`` inside it (transformers
parses the file three times per conversion, plus our header read), over a plain ndarray view of the memory map — the
same fields and tensor bytes as gguf's own reader. Measured on Gemma-3-270M's GGUF (262k-token vocabulary): 21 s →
10 s per parse, a cold conversion 128 s → 43 s with byte-identical output files (the issue note has the figures)."""

from __future__ import annotations

from pathlib import Path

import gguf
import gguf.gguf_reader as reader_module
import numpy as np
import pytest

from evalmon.checkpoints.convert import gguf_info, parsed_once


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny test model")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_token_list([f"tok{i}" for i in range(3000)])  # a vocabulary: one slice per entry in the reader
    writer.add_token_scores([float(i) / 7 for i in range(3000)])
    writer.add_tensor("w", np.arange(48, dtype=np.float32).reshape(6, 8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _contents(reader: gguf.GGUFReader) -> tuple[dict, list]:
    fields = {k: ([t.name for t in f.types], [np.asarray(p).tobytes() for p in f.parts], list(f.data))
              for k, f in reader.fields.items()}
    tensors = [(t.name, t.tensor_type, tuple(t.shape), np.asarray(t.data).tobytes()) for t in reader.tensors]
    return fields, tensors


def test_one_shared_parse_equals_ggufs_reader(tiny_gguf: Path) -> None:
    original_class, original_np = gguf.GGUFReader, reader_module.np
    plain = gguf.GGUFReader(tiny_gguf)
    with parsed_once():
        first = gguf.GGUFReader(tiny_gguf)
        with parsed_once():  # nested (ensure_checkpoint around dequantise): the outer cache serves
            assert gguf.GGUFReader(str(tiny_gguf)) is first
        assert gguf.GGUFReader(tiny_gguf.parent / ".." / tiny_gguf.parent.name / tiny_gguf.name) is first
        assert type(first.data) is np.ndarray and not isinstance(first.data, np.memmap)
        assert _contents(first) == _contents(plain)
        assert len(_contents(plain)[0]["tokenizer.ggml.tokens"][2]) == 3000
    assert gguf.GGUFReader is original_class and reader_module.np is original_np  # restored on exit
    assert gguf.GGUFReader(tiny_gguf) is not gguf.GGUFReader(tiny_gguf)  # no cache outside


def test_restored_when_the_body_raises(tiny_gguf: Path) -> None:
    original_class = gguf.GGUFReader
    with pytest.raises(RuntimeError), parsed_once():
        gguf.GGUFReader(tiny_gguf)
        raise RuntimeError("conversion failed")
    assert gguf.GGUFReader is original_class and reader_module.np is np


def test_header_facts_through_the_shared_parse(tiny_gguf: Path) -> None:
    assert gguf_info(tiny_gguf) == {"architecture": "llama", "quantization": "ALL_F32",
                                    "gguf_model_name": "tiny test model", "gguf_license": None}
