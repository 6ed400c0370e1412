from lmsi.build import build_rows
from lmsi.config import BuildConfig
from lmsi.stats import agreement_bar, chance_agreement, vote_signs, weak_vote
from lmsi.tasks import FORMATS, get_task
from lmsi.vote import majority, vote_rows


def test_majority_and_abstentions():
    assert majority(["3", "3", "4", None]) == ("3", 0.5, 2)
    assert majority([None, None]) == (None, 0.0, 0)
    assert majority([]) == (None, 0.0, 0)
    # abstentions never win even when they are the most common "answer"
    assert majority([None, None, None, "5"])[0] == "5"
    assert majority([None, None, None, "5"])[1] == 0.25


def test_ties_are_deterministic_first_seen():
    assert majority(["4", "3", "3", "4"])[0] == "4"
    assert majority(["3", "4", "4", "3"])[0] == "3"


def _samples():
    task = get_task("arith")
    q = task.load("train", 2)
    comp = [" 2 + 2 = 4. The answer is 4.", " 2 * 2 = 4. The answer is 4.", " 2 + 3 = 5. The answer is 5.", " hmm"]
    return task, [
        {
            "id": q[0].id,
            "question": q[0].question,
            "completions": comp,
            "answers": [task.extract(c) for c in comp],
            "gold": "4",
        },
        {"id": q[1].id, "question": q[1].question, "completions": comp[2:], "answers": ["5", None], "gold": "9"},
    ]


def test_vote_rows_and_build_threshold_and_paths():
    task, samples = _samples()
    votes = vote_rows(samples)
    assert votes[0]["answer"] == "4" and votes[0]["confidence"] == 0.5 and votes[0]["abstained"] == 1
    rows = build_rows(task, samples, votes, BuildConfig(threshold=0.5, max_paths=5), shots=2, seed=0)
    ids = {r["id"] for r in rows}
    assert ids == {samples[0]["id"], samples[1]["id"]}
    for r in rows:
        assert r["format"] in FORMATS
        assert "answer is 5" not in r["completion"] or r["id"] == samples[1]["id"]
    q0 = [r for r in rows if r["id"] == samples[0]["id"]]
    assert len(q0) == 2  # only the two majority paths
    strict = build_rows(task, samples, votes, BuildConfig(threshold=0.6), shots=2, seed=0)
    assert strict == []


def test_format_mix_is_configurable():
    task, samples = _samples()
    votes = vote_rows(samples)
    cfg = BuildConfig(
        threshold=0.0,
        max_paths=5,
        formats={"fewshot_cot": 1.0, "fewshot_direct": 0, "zeroshot_cot": 0, "zeroshot_direct": 0},
    )
    rows = build_rows(task, samples, votes, cfg, shots=2, seed=0)
    assert rows and all(r["format"] == "fewshot_cot" for r in rows)
    assert all(r["prompt"].count("Q:") == 3 for r in rows)  # 2 shots + the question
    assert all(r["completion"].strip().endswith("The answer is 4.") or "5." in r["completion"] for r in rows)


def test_prompt_formats():
    task = get_task("arith")
    q = "How many?"
    assert task.prompt(q, "zeroshot_cot", 3).endswith("A: Let's think step by step.")
    assert task.prompt(q, "zeroshot_direct", 3) == "Q: How many?\nA: The answer is"
    assert task.prompt(q, "fewshot_direct", 2).count("The answer is") == 3
    assert task.target("2 + 2 = 4.", "4", "fewshot_direct") == " 4."


def test_weighted_cycle_is_balanced():
    from itertools import islice

    from lmsi.build import _weighted_cycle

    got = list(islice(_weighted_cycle({f: 1.0 for f in FORMATS}), 8))
    assert sorted(got) == sorted(list(FORMATS) * 2)
    got = list(islice(_weighted_cycle({"fewshot_cot": 3.0, "zeroshot_cot": 1.0, "fewshot_direct": 0}), 8))
    assert got.count("fewshot_cot") == 6 and got.count("zeroshot_cot") == 2


def test_cap_keeps_format_mix_balanced():
    task = get_task("arith")
    qs = task.load("train", 12)
    samples, votes = [], []
    for q in qs:
        comp = [f" {q.id} a. The answer is 7.", f" {q.id} b. The answer is 7."]
        samples.append({"id": q.id, "question": q.question, "completions": comp, "answers": ["7", "7"]})
    votes = vote_rows(samples)
    rows = build_rows(task, samples, votes, BuildConfig(threshold=0.5, max_paths=2, max_rows=16), shots=2, seed=1)
    assert len(rows) == 16
    assert all(sum(r["format"] == f for r in rows) == 4 for f in FORMATS)


def test_vote_signs_and_the_weak_vote_rule():
    samples = [
        {"id": "a", "question": "?", "answers": ["1", "1", "1", "1"]},  # stable, unanimous
        {"id": "b", "question": "?", "answers": ["1", "2", "3", "4"]},  # halves: 1 vs 2
        {"id": "c", "question": "?", "answers": [None, None, "5", None]},  # even half abstains
    ]
    s = vote_signs(vote_rows(samples), samples, threshold=0.5)
    assert s["agreement"] == (1 + 0.25 + 0.25) / 3 and s["distinct"] == (1 + 4 + 1) / 3
    assert s["passing"] == 1 / 3 and s["stability"] == 1 / 3
    assert weak_vote(s, min_agreement=0.6).startswith("weak vote: agreement 0.50")
    assert weak_vote(s, min_agreement=0.5) is None  # at the bar is not below it
    assert weak_vote(s, min_agreement=0.4) is None
    none_pass = {**s, "passing": 0.0}
    assert "nothing to train on" in weak_vote(none_pass, min_agreement=0.0)


def test_chance_agreement_matches_a_direct_count():
    # 3 paths among 2 answers: top count 2 with prob 6/8, 3 with prob 2/8 -> E[top share] = 2.25/3
    assert abs(chance_agreement(2, 3) - 2.25 / 3) < 1e-12
    # 2 paths among 3 answers: equal with prob 1/3 -> E[top] = 1 + 1/3
    assert abs(chance_agreement(3, 2) - (4 / 3) / 2) < 1e-12
    assert chance_agreement(None, 8) == 1 / 8 and chance_agreement(1, 8) == 1 / 8
    assert 0.39 < chance_agreement(5, 8) < 0.40  # CommonsenseQA's 5 options, 8 paths


def test_guessing_among_few_options_does_not_pass_the_weak_vote_rule():
    """Five letters make 8 random paths agree 0.40 on average: a 0.54 agreement there is a weak
    vote, though 0.54 on open answers is not."""
    samples = [{"id": str(i), "question": "?", "answers": list("AABBCDEA" if i % 2 else "AAAABBCD")} for i in range(10)]
    votes = vote_rows(samples)
    open_ = vote_signs(votes, samples, threshold=0.3)
    choice = vote_signs(votes, samples, threshold=0.3, spaces={str(i): 5 for i in range(10)})
    assert open_["agreement"] == choice["agreement"] == (3 / 8 + 4 / 8) / 2
    assert open_["chance"] == open_["floor"] == 1 / 8 and agreement_bar(open_, 0.5) == 0.5
    assert abs(choice["chance"] - chance_agreement(5, 8)) < 1e-12
    bar = agreement_bar(choice, 0.5)
    assert bar == choice["chance"] + (1 - choice["chance"]) * (0.5 - 1 / 8) / (1 - 1 / 8)
    assert weak_vote(open_, 0.43) is None  # 0.4375 passes an open-answer bar of 0.43 ...
    weak = weak_vote(choice, 0.43)  # ... not the same bar lifted above chance (0.61)
    assert "chance level 0.40" in weak and "lifted above chance to 0.61" in weak
