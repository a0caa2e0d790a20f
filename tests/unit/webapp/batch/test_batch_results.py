"""A batch run's results files: rows appended in both formats, synced sizes to commit, and an attempt that goes
on after a lost worker cutting both files back to the committed sizes."""
from __future__ import annotations

import csv
import io
import json

import pytest

from webapp.batch.results import CSV_COLUMNS, CSV_NAME, JSONL_NAME, ResultsWriter, Summary, answered_row, \
    committed, refused_row

ANSWER = {"class": "red", "confidence": 0.9, "abstained": False,
          "top_k": [{"class": "red", "confidence": 0.9}, {"class": "blue", "confidence": 0.1}]}
ABSTAINED = {"class": None, "confidence": 0.4, "abstained": True, "top_k": [{"class": "blue", "confidence": 0.4}]}


def rows() -> list[dict]:
    return [answered_row("a/1.jpg", ANSWER), refused_row("b, \"odd\".txt", "not_an_image", "The file is not an image."),
            answered_row("文件夹/2.png", ABSTAINED)]


def read_csv(folder) -> list[dict]:
    return list(csv.DictReader(io.StringIO((folder / CSV_NAME).read_text(encoding="utf-8"), newline="")))


def test_rows_are_written_to_both_files_with_the_refusals(tmp_path):
    with ResultsWriter(tmp_path) as writer:
        for row in rows():
            writer.write(row)
        sizes = writer.sync()
    assert sizes == ((tmp_path / CSV_NAME).stat().st_size, (tmp_path / JSONL_NAME).stat().st_size)
    assert [json.loads(line) for line in (tmp_path / JSONL_NAME).read_text(encoding="utf-8").splitlines()] == rows()
    table = read_csv(tmp_path)
    assert list(table[0]) == list(CSV_COLUMNS)
    assert table[0] == {"path": "a/1.jpg", "class": "red", "confidence": "0.9", "abstained": "false",
                        "top_k": json.dumps(ANSWER["top_k"]), "error": "", "reason": ""}
    assert table[1]["path"] == "b, \"odd\".txt" and table[1]["error"] == "not_an_image"
    assert table[1]["reason"] == "The file is not an image." and table[1]["class"] == ""
    assert table[2]["class"] == "" and table[2]["abstained"] == "true" and table[2]["path"] == "文件夹/2.png"


def test_a_resumed_writer_cuts_what_was_never_committed_and_goes_on(tmp_path):
    with ResultsWriter(tmp_path) as writer:
        writer.write(rows()[0])
        committed_sizes = writer.sync()
        writer.write(rows()[1])  # written, then the worker was killed before its commit
        writer.sync()
    with open(tmp_path / JSONL_NAME, "ab") as torn:
        torn.write(b'{"path": "half a ro')
    with ResultsWriter(tmp_path, *committed_sizes) as writer:
        for row in rows()[1:]:
            writer.write(row)
        sizes = writer.sync()
    reference = tmp_path / "reference"
    with ResultsWriter(reference) as writer:
        for row in rows():
            writer.write(row)
        assert writer.sync() == sizes
    for name in (CSV_NAME, JSONL_NAME):
        assert (tmp_path / name).read_bytes() == (reference / name).read_bytes()
    assert b"".join(committed(tmp_path / JSONL_NAME, committed_sizes[1])) == \
        (reference / JSONL_NAME).read_bytes()[:committed_sizes[1]]


def test_a_committed_file_that_is_gone_stops_the_run(tmp_path):
    with pytest.raises(FileNotFoundError):
        ResultsWriter(tmp_path, 120, 80)


def test_the_summary_counts_classes_abstentions_and_refusals_and_survives_its_json():
    summary = Summary()
    for row in rows() + [answered_row("c.jpg", ANSWER)]:
        summary.add(row)
    summary.seconds = 2.0
    again = Summary.from_json(summary.to_json())
    assert again.to_json() == summary.to_json() == {
        "classes": {"red": 2}, "abstained": 1, "refused": {"not_an_image": 1}, "seconds": 2.0,
        "images_per_second": 2.0}
