"""Notebook 1 (pipelines): its committed form, its helper, and a full headless run offline."""
import json
import math
import re

import matplotlib.image
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest

from helpers import REPO_URL
from helpers.cache import REPO_ROOT
from helpers.models import PACKAGED_GENERATOR
from helpers.plots import plot_similarity

NOTEBOOK = REPO_ROOT / "1_pipelines.ipynb"
SOLUTIONS = REPO_ROOT / "solutions" / "1_pipelines_solutions.ipynb"
AFTERNOONS = ["What a lovely, sunny afternoon", "The afternoon is bright and pleasant", "What a dreary, rainy afternoon"]


# --- the heatmap helper -------------------------------------------------------

def test_plot_similarity_labels_values_and_file(tmp_path):
    labels = ["a first sentence", "a second one", "a third, much longer sentence that has to be wrapped"]
    similarity = pd.DataFrame([[1.0, 0.8, 0.1], [0.8, 1.0, -0.2], [0.1, -0.2, 1.0]], index=labels, columns=labels)
    path = tmp_path / "heatmap.png"
    fig = plot_similarity(similarity, title="test", path=path)
    ax = fig.axes[0]
    ticks = [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()]
    assert ticks == labels
    assert [t.get_text() for t in ax.texts] == ["1.00", "0.80", "0.10", "0.80", "1.00", "-0.20", "0.10", "-0.20", "1.00"]
    np.testing.assert_allclose(ax.images[0].get_array(), similarity.values)
    assert path.stat().st_size > 5_000
    plt.close(fig)


def test_plot_similarity_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        plot_similarity(np.ones((2, 3)))
    with pytest.raises(ValueError, match="3 names for a 2 x 2"):
        plot_similarity(np.eye(2), names=["a", "b", "c"])


# --- what the committed notebook states: TASK keys, links and the time budget ----------

def _markdown() -> list[str]:
    return [cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells if cell.cell_type == "markdown"]


def _markdown_task(task: int) -> str:
    """The markdown cell of TASK ``task``: the questions, the hint and the key."""
    return next(s for s in _markdown() if s.startswith(f"**TASK {task} ("))


def _answer_key(task: int) -> str:
    """The "What you should see" text of TASK ``task``."""
    return _markdown_task(task).split("What you should see</summary>")[1].split("</details>")[0]


def _part(key: str, letter: str) -> str:
    """Part ``(letter)`` of an answer key, up to the next part."""
    return re.split(r"\([a-e]\) ", key.split(f"({letter}) ", 1)[1])[0]


def _numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"(?<![\d.])\d\.\d\d(?![\d])", text)]


def test_task1_key_matches_the_embedding_model(embedder):
    """TASK 1's key names sentences and similarities; the model (offline and online the same) must give them."""
    key = _answer_key(1)
    same_form, other_form, negation = ("What a gloomy, wet afternoon", "The afternoon is grey, wet and gloomy",
                                       "The afternoon is not pleasant at all")
    assert f'"{same_form}"' in key and f'"{other_form}"' in key and f'"{negation}"' in _markdown_task(1)
    vectors = embedder.encode(AFTERNOONS + [same_form, other_form, negation], normalize_embeddings=True)
    lovely, pleasant, dreary = (vectors[3:] @ vectors[:3].T).T  # each: the three new sentences
    assert np.argmax([lovely[0], pleasant[0], dreary[0]]) == 2  # the suggested paraphrase: most similar to dreary
    assert np.argmax([lovely[1], pleasant[1], dreary[1]]) == 1  # the other form: closest to the pleasant one
    assert np.argmax([lovely[2], pleasant[2], dreary[2]]) == 1 and np.argmin([lovely[2], pleasant[2], dreary[2]]) == 2
    np.testing.assert_allclose(_numbers(_part(key, "a")), [dreary[0], lovely[0], pleasant[1], dreary[1]], atol=0.011)
    np.testing.assert_allclose(_numbers(_part(key, "c")), [pleasant[2], dreary[2]], atol=0.011)


def test_task4_key_matches_the_offline_classifier(embedder):
    """TASK 4's key gives the zero-shot substitute's labels and scores; section 4 explains its temperature."""
    from helpers.embeddings import SimilarityClassifier

    key = _part(_answer_key(4), "a")
    texts = ["This result is not bad at all", "Great, another desk rejection.", "I just love waiting months for reviews."]
    stated = re.findall(r'"([^"]+)"[^"(]*?(POSITIVE|NEGATIVE) \((\d\.\d\d)\)', key)
    assert [t for t, _, _ in stated] == texts and all(f'"{t}"' in _markdown_task(4).split("<details>")[0] for t in texts)
    classifier = SimilarityClassifier(embedder)
    found = classifier(texts)
    assert [r["label"] for r in found] == [label for _, label, _ in stated]
    np.testing.assert_allclose([r["score"] for r in found], [float(score) for _, _, score in stated], atol=0.011)
    section = next(s for s in _markdown() if s.startswith("## 4. "))
    temperature, gap, score = re.search(r"\*temperature\* (\d\.\d+).*a gap of (\d\.\d+) .*a score of (\d\.\d+)",
                                        section, flags=re.DOTALL).groups()
    assert float(temperature) == classifier.temperature
    assert round(1 / (1 + math.exp(-float(gap) / float(temperature))), 2) == float(score)


def test_every_task_links_its_worked_solution():
    slug = REPO_URL.removeprefix("https://github.com/")
    link = f"https://colab.research.google.com/github/{slug}/blob/main/solutions/{SOLUTIONS.name}"
    tasks = [s for s in _markdown() if s.startswith("**TASK ")]
    assert len(tasks) == 5 and all(link in _answer_key(i + 1) for i in range(5))
    assert SOLUTIONS.is_file()


def test_the_stated_time_budget_is_the_notebooks_own():
    """The introduction's reading and TASK minutes are what tools.course_time counts (at most 30 with compute)."""
    from tools.course_time import WORDS_PER_MINUTE, course_time

    intro = _markdown()[0]
    reading, tasks, compute = map(int, re.search(
        r"about (\d+) minutes of reading, (\d+) for the five TASKs and at most about (\d+) of computing", intro).groups())
    counted = course_time(NOTEBOOK)
    assert tasks == counted.task_minutes
    assert abs(reading - counted.words / WORDS_PER_MINUTE) <= 0.75
    assert reading + tasks + compute <= 30


def test_the_science_of_science_is_defined_with_references_before_the_models_try():
    markdown = _markdown()
    first_generation = next(i for i, s in enumerate(markdown) if s.startswith("## 2. "))
    before = "\n".join(markdown[:first_generation])
    assert "**science of science**" in before and "Fortunato et al. 2018" in before and "Wang & Barabási 2021" in before
    for section, reference in [("## 1. ", "Reimers & Gurevych 2019"), ("## 2. ", "Radford et al. 2019"),
                               ("## 2. ", "SmolLM2"), ("## 4. ", "Sanh et al. 2019"), ("## 4. ", "Socher et al. 2013")]:
        assert reference in next(s for s in markdown if s.startswith(section)), (section, reference)


# --- the notebook, executed offline -------------------------------------------

@pytest.fixture(scope="module")
def executed(tmp_path_factory, data_dir):
    """Runs the notebook once, offline (conftest), writing into a temporary outputs folder."""
    from tools.run_notebooks import execute_notebook

    outputs = tmp_path_factory.mktemp("notebook1_outputs")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("SCISCI_OUTPUTS", str(outputs))
    try:
        notebook = execute_notebook(NOTEBOOK, timeout=600)
    finally:
        monkeypatch.undo()
    results = json.loads((outputs / "notebook1_results.json").read_text())
    return notebook, outputs, results


def _stdout(notebook) -> str:
    return "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs if output.output_type == "stream" and output.name == "stdout"
    )


def test_every_cell_ran_without_error(executed):
    notebook, outputs, _ = executed
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert (outputs / NOTEBOOK.name).is_file()


def test_heatmaps_were_drawn_and_saved(executed):
    notebook, outputs, _ = executed
    drawn = [cell for cell in notebook.cells if cell.cell_type == "code" and "plot_similarity(" in cell.source
             and any("image/png" in o.get("data", {}) for o in cell.outputs)]
    assert len(drawn) == 2
    for name in ["similarity_heatmap.png", "title_similarity_heatmap.png"]:
        path = outputs / name
        assert path.stat().st_size > 10_000
        height, width = matplotlib.image.imread(path).shape[:2]
        assert height > 300 and width > 300


def test_positive_sentences_are_closer_to_each_other_than_to_the_negative(executed):
    _, _, results = executed
    sentences, similarity = results["sentences"], np.array(results["similarity"])
    assert similarity.shape == (len(sentences), len(sentences))
    np.testing.assert_allclose(np.diag(similarity), 1, atol=1e-3)
    np.testing.assert_allclose(similarity, similarity.T, atol=1e-4)
    good, great, terrible = (sentences.index(s) for s in [
        "What a lovely, sunny afternoon", "The afternoon is bright and pleasant",
        "What a dreary, rainy afternoon"])
    assert similarity[good, great] > similarity[good, terrible]
    assert similarity[good, great] > similarity[great, terrible]
    # the text beside the heatmap: the dreary one "not unrelated", the research pair bright and apart
    assert min(similarity[good, terrible], similarity[great, terrible]) > 0.4
    research = [sentences.index(s) for s in sentences if "cited" in s or "citations" in s]
    assert len(research) == 2 and similarity[research[0], research[1]] > 0.5
    assert np.abs(similarity[np.ix_(research, [good, great, terrible])]).max() < 0.2


def test_generated_texts_are_non_empty_and_the_fallback_is_named(executed):
    notebook, _, results = executed
    texts = [results["base_greedy"], *results["base_sampled"].values(), results["chat_greedy"], *results["chat_sampled"]]
    assert len(texts) == 6 and all(isinstance(t, str) and t.strip() for t in texts)
    # offline (conftest), both generation sections run the packaged model, and say so
    assert results["models"]["base_generator"] == results["models"]["chat_generator"] == PACKAGED_GENERATOR
    stdout = _stdout(notebook)
    assert "'openai-community/gpt2' can't be loaded (the hub is unreachable): using the packaged" in stdout
    assert f"Model: {PACKAGED_GENERATOR}" in stdout


def test_the_offline_answers_miss_what_the_field_studies(executed):
    """Section 2 says the offline model's six attempts never name what the science of science studies."""
    _, _, results = executed
    texts = [results["base_greedy"], *results["base_sampled"].values(), results["chat_greedy"], *results["chat_sampled"]]
    objects = re.compile(r"citation|\bpapers?\b|publication|career|grant|funding|collaborat", re.IGNORECASE)
    assert [t for t in texts if objects.search(t)] == []


def test_chat_template_is_shown_with_both_messages(executed):
    notebook, _, results = executed
    prompt = results["chat_prompt"]
    # the template keeps the system message before the user's and adds its own markup around them
    assert 0 <= prompt.index("helpful assistant") < prompt.index("What does the science of science study?")
    assert len(prompt) > len("".join(m["content"] for m in results["chat_messages"])) + 20
    assert prompt in _stdout(notebook)


def test_sentiment_labels_and_the_negative_sentence(executed):
    notebook, _, results = executed
    sentiment = pd.DataFrame(results["sentiment"])
    assert set(sentiment["label"]) <= {"POSITIVE", "NEGATIVE"}
    assert sentiment["score"].between(0, 1).all()
    labels = dict(zip(sentiment["text"], sentiment["label"]))
    assert labels["What a dreary, rainy afternoon"] == "NEGATIVE"
    assert labels["What a lovely, sunny afternoon"] == "POSITIVE"
    assert "Zero-shot classifier: labels POSITIVE, NEGATIVE" in _stdout(notebook)  # offline, and it says so
    assert results["models"]["sentiment"] == "zero-shot: sentence-transformers/all-MiniLM-L6-v2"


def test_library_calls_run_in_cells_and_match_the_helper(executed):
    notebook, _, results = executed
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    for call in ["SentenceTransformer(", ".encode(", 'pipeline("text-generation"', 'pipeline("sentiment-analysis"']:
        assert call in code
    assert results["models"]["embeddings"] == "sentence-transformers/all-MiniLM-L6-v2"
    difference = float(_stdout(notebook).split("largest difference to encode():")[1].split()[0])
    assert difference < 1e-5  # embed_texts gives encode's vectors


def test_closing_section_groups_and_ranks_the_titles_as_it_says(executed, course_corpus):
    notebook, _, results = executed
    titles, similarity = results["titles"], np.array(results["title_similarity"])
    assert len(titles) == 3 and set(titles) <= set(course_corpus["title"])
    assert similarity.shape == (3, 3)
    np.testing.assert_allclose(np.diag(similarity), 1, atol=1e-3)
    # "two about interdisciplinary research, one about ethnic disparities in science news": grouped as a reader would
    assert ["interdisciplinary" in t.lower() for t in titles] == [True, True, False] and "ethnicit" in titles[2]
    assert similarity[0, 1] > max(similarity[0, 2], similarity[1, 2])
    # the question about interdisciplinary citations finds the title on exactly that
    top = titles[int(np.argmax(results["question_similarity"]))]
    assert "citation" in top.lower() and "interdisciplinary" in top.lower()
    # tables show whole titles, not cut at 50 characters
    table = next(o["data"]["text/html"] for cell in notebook.cells if cell.cell_type == "code"
                 and "corpus.iloc[rows]" in cell.source for o in cell.outputs if "text/html" in o.get("data", {}))
    assert all(title in table for title in titles)


def test_core_path_time_is_printed_as_course_time_reads_it(executed):
    from tools.course_time import course_time

    notebook, outputs, _ = executed
    last = [cell for cell in notebook.cells if cell.cell_type == "code"][-1]
    printed = "".join(o.get("text", "") for o in last.outputs)
    assert re.search(r"^Core path computed in \d+ s on this machine \(imports included\)\.$", printed, re.MULTILINE)
    assert course_time(outputs / NOTEBOOK.name).compute_s > 0


def test_no_library_warnings(executed):
    from tools.run_notebooks import library_warnings

    assert library_warnings(executed[0]) == []
