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


def test_evaluate_reports_each_part_apart_then_all():
    truth = [True, False, False, True, True, False]
    part = ["random", "random", "random", "hard", "hard", "hard"]
    says_true = [True, True, False, True, False, True]
    table = evaluate({"method": says_true}, truth, part)
    assert list(table.columns)[0] == "part" and table["part"].unique().tolist() == ["random", "hard", "all"]
    rows = table.set_index(["part", "method"])
    assert rows.loc[("random", "method"), "accuracy"] == pytest.approx(2 / 3)
    assert rows.loc[("hard", "method"), ["true_positives", "false_positives"]].tolist() == [1, 1]
    assert rows.loc[("all", "method"), "n"] == 6 and rows.loc[("all", "method"), "accuracy"] == pytest.approx(0.5)
    # Each part's base rate is its own majority: FALSE in the random part, TRUE in the hard part.
    assert rows.loc[("random", BASE_RATE), "true_positives"] == 0
    assert rows.loc[("hard", BASE_RATE), "true_positives"] == 2
    assert evaluate({"method": says_true}, truth, ["pdf"] * 6)["part"].unique().tolist() == ["pdf"]
    with pytest.raises(ValueError, match="one part per record"):
        evaluate({"method": says_true}, truth, part[:3])


def test_keyword_rule():
    keywords = [["bibliometric analysis", "scopus"], [], None, ["citation analysis"], ["knowledge graphs"]]
    assert keyword_rule(keywords, "bibliometric").tolist() == [True, False, False, True, False]
    assert keyword_rule(keywords, "knowledge_graph").tolist() == [False, False, False, False, True]


def test_keyword_rule_needs_keyword_terms():
    with pytest.raises(ValueError, match="no keyword_terms"):
        keyword_rule([["x"]], Question("own", "Does it?", "A definition."))
