"""The course clock: words read on the core path, TASK minutes, printed compute time."""
import json

from tools.course_time import course_time, read_words


def _notebook(tmp_path, cells):
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    return path


def _md(text):
    return {"cell_type": "markdown", "source": text}


def test_reading_leaves_out_folded_answers_code_and_link_addresses():
    text = "Read these five words here. <details><summary>Hint</summary>not these</details> ```x = 1```"
    assert read_words(text) == 5
    assert read_words("See [the docs](https://example.org/a-long/address) now.") == 4


def test_core_path_stops_at_the_optional_part_and_counts_tasks_and_compute(tmp_path):
    printed = {"cell_type": "code", "source": "", "outputs": [{"text": "Core path computed in 95 s on this machine.\n"}]}
    path = _notebook(tmp_path, [
        _md("# Title\nOne two three."),
        _md("**TASK 1 (4 minutes).** Do it.\n<details><summary>Hint</summary>long hint words</details>"),
        printed,
        _md("## Optional · more\n**TASK 9 (10 minutes).** Later."),
    ])
    t = course_time(path)
    assert (t.words, t.task_minutes, t.compute_s) == (10, 4, 95.0)  # Title One two three; TASK 1 4 minutes Do it
    assert abs(t.total_minutes - (10 / 200 + 4 + 95 / 60)) < 1e-9
