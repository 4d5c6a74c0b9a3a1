"""Notebook 1 (pipelines): its committed form, its helper, and a full headless run offline."""
import json

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from helpers.cache import REPO_ROOT
from helpers.models import PACKAGED_GENERATOR
from helpers.plots import plot_similarity

NOTEBOOK = REPO_ROOT / "1_pipelines.ipynb"


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
    with pytest.raises(ValueError, match="3 labels for a 2 x 2"):
        plot_similarity(np.eye(2), labels=["a", "b", "c"])


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


def test_generated_texts_are_non_empty_and_the_fallback_is_named(executed):
    notebook, _, results = executed
    texts = [results["base_greedy"], *results["base_sampled"].values(), results["chat_greedy"], *results["chat_sampled"]]
    assert len(texts) == 6 and all(isinstance(t, str) and t.strip() for t in texts)
    # offline (conftest), both generation sections run the packaged model, and say so
    assert results["models"]["base_generator"] == results["models"]["chat_generator"] == PACKAGED_GENERATOR
    stdout = _stdout(notebook)
    assert "'openai-community/gpt2' can't be loaded (the hub is unreachable): using the packaged" in stdout
    assert f"Model: {PACKAGED_GENERATOR}" in stdout


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


def test_closing_section_uses_three_course_titles(executed, course_corpus):
    _, _, results = executed
    titles, similarity = results["titles"], np.array(results["title_similarity"])
    assert len(titles) == 3 and set(titles) <= set(course_corpus["title"])
    assert similarity.shape == (3, 3)
    np.testing.assert_allclose(np.diag(similarity), 1, atol=1e-3)


def test_no_library_warnings(executed):
    from tools.run_notebooks import library_warnings

    assert library_warnings(executed[0]) == []
