"""Spark-native reads without a JVM: the lines Hadoop's text reader hands over parse exactly like the file
(line numbers, byte offsets behind a BOM, CRLF, NUL, invalid UTF-8), ``kind: spark_table`` config errors are one
line, and ``spark.reads`` picks the read per source kind (pyspark is not imported here)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from evalmon.config.monitor import load_monitor_text
from evalmon.core.errors import ConfigError
from evalmon.monitor.executors.spark_reads import native_source
from evalmon.monitor.executors.spark_reads_lines import numbered
from evalmon.monitor.sources import build_source


def _hadoop_lines(data: bytes) -> list[bytes]:
    """What ``spark.read.option('lineSep', '\\n').text`` yields for a file: split on \\n, no BOM on line 1,
    no empty piece after a final \\n."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    pieces = data.split(b"\n")
    return pieces[:-1] if data.endswith(b"\n") else pieces


@pytest.mark.e2e  # in-process, but ~0.5 s a case on this machine: over the unit lane's per-test budget
@pytest.mark.parametrize(("bom", "end"), [(b"", b""), (b"\xef\xbb\xbf", b"\r\n")])
def test_lines_as_spark_reads_them_parse_like_the_file(tmp_path: Path, bom: bytes, end: bytes) -> None:
    lines = [b'{"timestamp": "2026-11-01T00:10:00Z", "prompt": "a", "response": "x"}', b"{not json", b"",
             b'{"timestamp": 1762000000, "prompt": "b", "response": "y"}', b'{"prompt": "caf\xe9", "timestamp": "2026-11-01T00:20:00Z"}',
             b'{"x": 1}\x00', b"[1, 2]", b'{"timestamp": "2026-11-01T01:20:00+01:00", "prompt": "c", "response": "z"}']
    data = bom + b"\r\n".join(lines) + end
    f = tmp_path / "x.jsonl"
    f.write_bytes(data)
    src = build_source({"kind": "jsonl", "path": str(f), "on_corrupt": "quarantine"}, tmp_path)
    index = src.index_lines(f, numbered(_hadoop_lines(data), len(data)))
    for start, end_ in (("2026-11-01T00:00:00Z", "2026-11-01T00:15:00Z"), (None, None)):
        want = src.read_partition(str(f), start, end_)
        got = src.index_batch(str(f), index, 0, start, end_)
        assert got.frame.equals(want.frame) and len(want.frame)
        assert got.quarantined == want.quarantined and got.quarantined_times == want.quarantined_times
    locations = [q.location for q in want.quarantined]  # the whole file's
    nul = len(bom) + sum(len(line) + 2 for line in lines[:5]) + lines[5].index(b"\0")  # behind the BOM
    assert f"line 6, byte {nul}" in locations, locations


@pytest.mark.e2e  # in-process, ~0.5 s
def test_csv_lines_as_spark_reads_them_parse_like_the_file(tmp_path: Path) -> None:
    """CSV through the same path: a BOM, a quoted field over two lines, a row with too many fields."""
    data = (b'\xef\xbb\xbftimestamp,prompt,response\r\n2026-11-01T00:10:00Z,"two\nlines",r\r\n'
            b"2026-11-01T00:12:00Z,a,b,c\r\n1762000000,p,x\r\n")
    f = tmp_path / "x.csv"
    f.write_bytes(data)
    src = build_source({"kind": "csv", "path": str(f)}, tmp_path)
    index = src.index_lines(f, numbered(_hadoop_lines(data), len(data)))
    want = src.read_partition(str(f), None, None)
    got = src.index_batch(str(f), index, 0, None, None)
    assert got.frame.equals(want.frame) and len(want.frame) == 2 and "two\nlines" in set(want.frame["prompt"])
    assert got.quarantined == want.quarantined and [q.location for q in want.quarantined] == ["line 4"]


def _load(tmp_path: Path, source: str) -> object:
    return load_monitor_text(textwrap.dedent(f"""\
        name: m
        source: {source}
        window: {{size: 1h}}
        tracking: {{enabled: false}}
        """), "m.yaml", base_dir=tmp_path)


@pytest.mark.parametrize(("source", "what"), [
    ("{kind: spark_table}", "exactly one of `table`"),
    ("{kind: spark_table, table: t, format: delta}", "exactly one of `table`"),
    ("{kind: spark_table, table: t, path: x}", "go with `format`"),
    ("{kind: spark_table, format: jdbc, path: x}", "format: jdbc takes options"),
    ("{kind: spark_table, format: delta}", "format: delta needs `path`"),
    ("{kind: spark_table, tabel: t}", "tabel"),
])
def test_spark_table_config_errors_are_one_line(tmp_path: Path, source: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, source)
    line = err.value.one_line()
    assert what in line and "source" in line and "\n" not in line, line


def test_spark_reads_per_source_kind(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "{kind: spark_table, format: jdbc, options: {url: 'jdbc:sqlite:/x.db', dbtable: t, "
                          "numPartitions: 4}}")
    assert cfg.source.options == {"url": "jdbc:sqlite:/x.db", "dbtable": "t", "numPartitions": "4"}
    table = build_source({"kind": "spark_table", "table": "db.events"}, tmp_path)
    delta = build_source({"kind": "spark_table", "format": "delta", "path": "lake/events"}, tmp_path)
    assert table.name == "db.events" and delta.path == str((tmp_path / "lake/events").resolve())
    jsonl = build_source({"kind": "jsonl", "path": "t.jsonl"}, tmp_path)
    csv = build_source({"kind": "csv", "path": "t.csv"}, tmp_path)
    sql = build_source({"kind": "sql", "url": "sqlite:///t.db", "table": "t"}, tmp_path)
    for src in (jsonl, csv):
        assert [native_source(src, r) for r in ("auto", "native", "python")] == [True, True, False]
    assert [native_source(table, r) for r in ("auto", "native")] == [True, True]
    with pytest.raises(ConfigError, match=r"spark\.reads: python: source 'db\.events' \(kind: spark_table\) is "
                                          r"read by Spark") as err:
        native_source(table, "python")
    assert "\n" not in err.value.one_line()
    assert native_source(sql, "auto") is False
    with pytest.raises(ConfigError, match=r"spark\.reads: native: source 't' has no Spark read"):
        native_source(sql, "native")


def test_spark_table_with_python_reads_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_monitor_text("name: m\nsource: {kind: spark_table, table: t}\nexecutor: spark\nspark: {reads: python}\n"
                          "tracking: {enabled: false}\n", "m.yaml", base_dir=tmp_path)
    line = err.value.one_line()
    assert "spark.reads: python cannot read source kind spark_table" in line and "\n" not in line, line
    assert load_monitor_text("name: m\nsource: {kind: spark_table, table: t}\ntracking: {enabled: false}\n",
                             "m.yaml", base_dir=tmp_path).source.table == "t"  # executor: local: the active session
