"""AgentTuning's contamination check: hand-checked cases, the pigeonhole index, the real data."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from lumos_graph.agent import protocol
from lumos_graph.evaluation.datasets import load_dataset
from lumos_graph.training.contamination import (
    MAX_MISMATCHES,
    NGRAM,
    _Index,
    check_contamination,
    contamination_rate,
    example_text,
    label,
    tokens,
)
from lumos_graph.training.data import shipped_training_set

TEST = ("Olivia walks 26 miles every day on her favorite walking trail, which includes 14 miles "
        "of walking on the beach and 12 miles of walking on the sidewalk. On the sidewalk, "
        "Olivia walks at twice the rate of speed that she does on the beach.")
UNRELATED = ("The committee met on a rainy Tuesday to discuss the new library budget, and after "
             "a long debate they voted to buy more books about astronomy and gardening.")


def rate(text: str, *test: str) -> float:
    return contamination_rate(text, _Index(test or (TEST,)))


def test_an_exact_copy_is_dirty() -> None:
    assert rate(TEST) == 1.0
    assert label(rate(TEST.upper().replace(",", " ;"))) == "dirty"  # case, punctuation


def test_a_copy_with_a_few_words_changed_is_still_dirty() -> None:
    # every third word changed: 3 or 4 changes in every 10-gram, all within the 4 allowed
    words = tokens(TEST)
    changed = " ".join(f"other{i}" if i % 3 == 0 else w for i, w in enumerate(words))
    assert rate(changed) == 1.0
    names = TEST.replace("Olivia", "Emma").replace("26", "31").replace("sidewalk", "road")
    assert label(rate(names)) == "dirty"


def test_five_changes_in_every_10_gram_do_not_match() -> None:
    words = tokens(TEST)
    changed = [f"x{i}" if i % 2 else w for i, w in enumerate(words)]  # every other token
    assert rate(" ".join(changed)) == 0.0


def test_an_unrelated_text_is_clean() -> None:
    assert rate(UNRELATED) == 0.0
    assert label(0.0) == "clean"


def test_a_half_overlapping_text_is_uncertain() -> None:
    half = " ".join(TEST.split()[:20]) + " " + UNRELATED
    value = rate(half)
    assert 0.2 < value < 0.8
    assert label(value) == "uncertain"


def test_a_text_shorter_than_a_10_gram_has_no_rate() -> None:
    assert rate("Olivia walks 26 miles every day") == 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10**6))
def test_the_pigeonhole_index_finds_exactly_the_brute_force_matches(seed: int) -> None:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(4)]  # a tiny vocabulary: many near matches
    test = [" ".join(rng.choices(vocab, k=rng.randint(10, 30))) for _ in range(3)]
    index = _Index(test)
    grams = {tuple(tokens(t)[i: i + NGRAM]) for t in test for i in range(len(tokens(t)) - 9)}
    for _ in range(20):
        gram = tuple(rng.choices(vocab, k=NGRAM))
        brute = any(sum(a != b for a, b in zip(gram, g, strict=True)) <= MAX_MISMATCHES
                    for g in grams)
        assert index.matches(gram) == brute


def test_the_compared_text_is_the_task_of_every_lumos_prompt() -> None:
    task = "How many apples are left?"
    listing = "The available action list is 'Calculator'.\nCalculator(formula): Calculate."
    for first in (protocol.plan_first(task), protocol.ground_first(task, listing, "Subgoal 1: A"),
                  protocol.ground_first_onepass(task, listing, ["A", "B"])):
        example = {"messages": [{"role": "user", "content": first},
                                {"role": "assistant", "content": "x"}]}
        assert example_text(example) == task
    chat = {"messages": [{"role": "user", "content": "Hi there"},
                         {"role": "assistant", "content": "Hello"},
                         {"role": "user", "content": "Bye"}]}
    assert example_text(chat) == "Hi there\nBye"


def test_check_contamination_reports_counts_and_rates() -> None:
    examples = [
        {"id": "copy", "messages": [{"role": "user", "content": protocol.plan_first(TEST)}]},
        {"id": "other", "messages": [{"role": "user", "content": UNRELATED}]},
    ]
    report = check_contamination({"lumos_maths_plan_onetime": examples}, [TEST])
    assert report.counts == {"clean": 1, "uncertain": 0, "dirty": 1}
    assert report.dirty() == {("lumos_maths_plan_onetime", "copy")}
    summary = report.as_dict()
    assert summary["not_clean"] == [{"file": "lumos_maths_plan_onetime", "id": "copy",
                                     "rate": 1.0, "label": "dirty"}]


def test_the_shipped_training_set_is_not_contaminated_by_maths_test() -> None:
    files = shipped_training_set()
    test = [item["question"] for item in load_dataset("maths-test")]
    summary = check_contamination({"plan": files["lumos_maths_plan_onetime"]}, test).as_dict()
    assert summary["counts"]["dirty"] == 0
    # templates 0-79 share some phrasing with 80-99; none comes near the dirty threshold
    assert summary["max_rate"] < 0.6
    assert summary["counts"]["uncertain"] < 0.05 * summary["examples"]
