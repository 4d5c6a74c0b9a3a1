"""Evaluation: intervals, the accuracy table, the keyword rule and the annotations' shape."""
import pytest

from helpers.evaluation import BASE_RATE, evaluate, keyword_rule, wilson_interval
from helpers.prompts import Question


def test_wilson_interval_and_evaluate():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    truth = [True, True, False, False, False]
    table = evaluate({"perfect": truth, "always TRUE": [True] * 5}, truth).set_index("method")
    assert table.at["perfect", "accuracy"] == 1.0 and table.at["perfect", "false_positives"] == 0
    assert table.at["always TRUE", "accuracy"] == 0.4 and table.at["always TRUE", "false_positives"] == 3
    base = table.loc[BASE_RATE]
    assert base["accuracy"] == 0.6 and base["n"] == 5 and base["n_true"] == 2
    assert table["ci_low"].le(table["accuracy"]).all() and table["ci_high"].ge(table["accuracy"]).all()


def test_keyword_rule():
    keywords = [["bibliometric analysis", "scopus"], [], None, ["citation analysis"], ["knowledge graphs"]]
    assert keyword_rule(keywords, "bibliometric").tolist() == [True, False, False, True, False]
    assert keyword_rule(keywords, "knowledge_graph").tolist() == [False, False, False, False, True]




def test_keyword_rule_needs_keyword_terms():
    with pytest.raises(ValueError, match="no keyword_terms"):
        keyword_rule([["x"]], Question("own", "Does it?", "A definition."))
