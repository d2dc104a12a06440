"""Each benchmark suite rewrites only its own BENCHMARKS.md section."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

from _section import markers, write_section  # noqa: E402


def test_suites_keep_each_others_sections(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nintro\n")
    write_section(str(md), "## Survey\nfirst", "survey")
    write_section(str(md), "## MCU\nmcu text", "mcu")
    write_section(str(md), "## Survey\nsecond", "survey")  # a rerun replaces its own section
    text = md.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n")
    assert "first" not in text and "second" in text and "mcu text" in text
    assert text.count("<!-- survey-suite:begin -->") == 1 and text.count("<!-- mcu-suite:end -->") == 1
    assert text.index("second") < text.index("mcu text")  # replaced in place, not moved


def test_markers_in_the_text_are_not_doubled(tmp_path):
    md = tmp_path / "new.md"
    begin, end = markers("qat")
    write_section(str(md), f"{begin}\nbody\n{end}\n", "qat")
    assert md.read_text() == f"{begin}\nbody\n{end}\n"


def test_bad_suite_name():
    with pytest.raises(ValueError, match="Received: 'Bad Name'"):
        markers("Bad Name")
