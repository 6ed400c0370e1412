"""Every registered task on real rows from ../shared/data: load, prompt, and score known outputs.

Tricky-output tables per answer type include outputs that must extract nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lmsi.tasks import FORMATS, TASKS, get_task
from lmsi.tasks.data import data_root

needs_data = pytest.mark.skipif(not (data_root() / "gsm8k").is_dir(), reason=f"benchmark copies not at {data_root()}")


def _wrong(task, ex):
    if task.answer_type == "number":
        return str(int(float(ex.answer)) + 1)
    if task.answer_type == "choice":
        return "B" if ex.answer == "A" else "A"
    if task.answer_type == "label":
        return "no" if ex.answer == "yes" else "yes"
    return "zebra"


@needs_data
@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_loads_real_rows_and_scores_known_outputs(name):
    task = get_task(name)
    sizes = task.splits()
    assert all(n > 0 for n in sizes.values()), sizes
    examples = task.load(task.eval_split, 5)
    assert len(examples) == 5 and len({e.id for e in examples}) == 5
    ex = examples[0]
    assert ex.answer is not None
    for fmt in FORMATS:
        p = task.prompt(ex.question, fmt, 3)
        assert p.endswith(("A:", "A: Let's think step by step.", "A: The answer is")) and ex.question in p
    gold = ex.answer.split("|")[0]
    right = f"Let me work through it. The answer is {task.show(gold)}."
    assert task.is_correct(task.extract(right, "fewshot_cot", ex.choices), ex.answer)
    wrong = f"Thinking... The answer is {task.show(_wrong(task, ex))}."
    pred = task.extract(wrong, "fewshot_cot", ex.choices)
    assert pred is not None and not task.is_correct(pred, ex.answer)
    assert task.extract("I am not sure how to solve this one.", "fewshot_cot", ex.choices) is None
    direct = f" {task.show(gold)}.\nQ: next question"
    assert task.is_correct(task.extract(direct, "fewshot_direct", ex.choices), ex.answer)


@needs_data
def test_split_sizes_match_the_data_readmes():
    assert get_task("gsm8k").splits() == {"train": 7473, "test": 1319}
    assert get_task("arc_challenge").splits() == {"train": 1119, "dev": 294, "test": 1172}
    assert get_task("openbookqa").splits() == {"train": 4957, "dev": 500, "test": 500}
    assert get_task("commonsenseqa").splits() == {"train": 9741, "dev": 1221, "test": 1140}
    assert get_task("anli_r3").splits() == {"dev": 1200, "test": 1200}
    drop = get_task("drop").splits()
    assert drop["train"] + drop["test"] == drop["dev"] == 9536


@needs_data
def test_drop_halves_share_no_passage():
    task = get_task("drop")
    passages = lambda split: {e.question.split("\nQuestion: ")[0] for e in task.load(split)}
    assert not passages("train") & passages("test")


OPTIONS = ("dry palms", "wet palms", "palms covered with oil", "oil")
CHOICE_TABLE = [
    ("So the answer is (B).", "B"),
    ("The answer is B.", "B"),
    ("The answer is: C) palms covered with oil", "C"),
    ("the answer is wet palms.", "B"),
    ("The answer is palms covered with oil.", "C"),  # longest option wins over 'oil'
    ("The answer is (A). Wait, no: the answer is (D).", "D"),  # last statement
    ("The answer is **(A)**", "A"),
    ("The answer is (A) or (C).", None),  # ambiguous
    ("The answer is (D). More text. The answer is (", "D"),  # a statement cut off by the token cap
    ("The answer is (C).\nThe answer is", "C"),
    ("Option (B) looks right.", None),  # no answer statement
    ("The answer is (F).", None),  # not an option
    ("The answer is sandpaper.", None),
    ("", None),
]


@pytest.mark.parametrize("text,want", CHOICE_TABLE)
def test_choice_extraction_table(text, want):
    assert get_task("openbookqa").extract(text, "fewshot_cot", OPTIONS) == want


NLI_TABLE = [
    ("The premise says so. The answer is yes.", "yes"),
    ("So the answer is No.", "no"),
    ("The answer is it is not possible to tell.", "it is not possible to tell"),
    ("The answer is: not possible to tell", "it is not possible to tell"),
    ("The answer is true", "yes"),
    ("The answer is nobody knows.", None),  # 'no' must be a whole word
    ("Yes, clearly.", None),
    ("The answer is no. The answer is **", "no"),  # cut off: the statement before counts
]


@pytest.mark.parametrize("text,want", NLI_TABLE)
def test_label_extraction_table(text, want):
    assert get_task("anli_r1").extract(text) == want


DROP_TABLE = [
    ("He scored twice. The answer is 2.", "2", True, 1.0),
    ("The answer is 1,200 yards.", "1200 yards", True, 1.0),
    ("The answer is the Bears.", "Bears", True, 1.0),
    ("The answer is Sweden and Denmark.", "Denmark and Sweden", False, 1.0),  # bag-of-words F1
    ("The answer is Tom Brady.", "Brady", False, 2 / 3),
    ("The answer is 3.5.", "3.5", True, 1.0),
    ("No idea.", "3", False, 0.0),
]


@pytest.mark.parametrize("text,gold,em,f1", DROP_TABLE)
def test_drop_text_scoring_table(text, gold, em, f1):
    task = get_task("drop")
    pred = task.extract(text)
    assert task.is_correct(pred, gold) is em
    assert task.f1(pred, gold) == pytest.approx(f1)
    assert task.is_correct(pred, "zzz|" + gold) is em  # any accepted gold counts


@given(st.integers(2, 5), st.data())
def test_choice_letter_roundtrip(n, data):
    k = data.draw(st.integers(0, n - 1))
    letter = chr(65 + k)
    style = data.draw(st.sampled_from(["({})", "{}", "{})", "({}) option text"]))
    text = data.draw(st.text(alphabet="abcdefghij .,", max_size=40)) + " The answer is " + style.format(letter) + "."
    assert get_task("commonsenseqa").extract(text, "fewshot_cot", tuple(f"opt{i}" for i in range(n))) == letter


@given(st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=60))
def test_text_without_answer_statement_extracts_nothing(text):
    if "answer" in text.lower():
        return
    for name in ("gsm8k", "openbookqa", "strategyqa", "drop"):
        assert get_task(name).extract(text, "fewshot_cot", OPTIONS) is None


# -- generic file tasks ---------------------------------------------------------
def test_file_task_choice_jsonl(tmp_path):
    import json

    path = tmp_path / "q.jsonl"
    rows = [
        {"id": "a", "q": "Pick red.", "opts": ["blue", "red"], "gold": "red"},
        {
            "id": "b",
            "q": "Pick the first.",
            "opts": [{"label": "A", "text": "x"}, {"label": "B", "text": "y"}],
            "gold": 0,
        },
        {"id": "c", "q": "Pick B.", "opts": "(A) one (B) two", "gold": "(B)"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = get_task(f"file:{path}", question_field="q", answer_field="gold", choices_field="opts", answer_type="choice")
    exs = task.load("all")
    assert [e.answer for e in exs] == ["B", "A", "B"]
    assert exs[2].choices == ("one", "two")
    assert "Answer Choices: (A) blue (B) red" in exs[0].question
    assert task.is_correct(task.extract("The answer is red.", choices=exs[0].choices), "B")


def test_file_task_csv_yesno_and_text(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("question,answer\nIs ice cold?,True\nIs fire cold?,no\n")
    task = get_task(f"file:{path}", answer_type="yesno")
    assert [e.answer for e in task.load("all")] == ["yes", "no"]
    path = tmp_path / "t.json"
    path.write_text('[{"question": "Who?", "answer": ["Ann", "Anne"]}]')
    task = get_task(f"file:{path}", answer_type="text")
    assert task.is_correct(task.extract("The answer is Anne."), task.load("all")[0].answer)


@pytest.mark.parametrize(
    "content,answer_type,needle",
    [
        ('{"question": "ok", "answer": 1}\n{"question": 5, "answer": 2}\n', "number", "q.jsonl:2: field 'question'"),
        ('{"question": "ok", "answer": "seven"}\n', "number", "q.jsonl:1: field 'answer' is not a number"),
        ('{"question": "ok", "answer": "maybe"}\n', "yesno", "q.jsonl:1: field 'answer' must be yes/no"),
        ('{"question": "ok", "answer": "Z", "choices": ["a", "b"]}\n', "choice", "q.jsonl:1: field 'answer'"),
        ('{"question": "ok", "answer": "A", "choices": ["only one"]}\n', "choice", "q.jsonl:1: field 'choices'"),
        ('{"question": "   ", "answer": 1}\n', "number", "q.jsonl:1: empty question"),
        ('\n\n{"question": "ok"\n', "number", "q.jsonl:3: malformed JSON"),
    ],
)
def test_file_task_bad_input_names_line_and_field(tmp_path, content, answer_type, needle):
    from lmsi.io import InputError

    path = tmp_path / "q.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        get_task(f"file:{path}", answer_type=answer_type).load("all")


def test_saved_datasets_folder_is_a_task(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict(
        {"test": datasets.Dataset.from_dict({"question": ["1+1?", "2+2?"], "answer": ["2", "4"]})}
    )
    dd.save_to_disk(str(tmp_path / "ds"))
    task = get_task(f"file:{tmp_path / 'ds'}")
    assert [e.answer for e in task.load("test")] == ["2", "4"]


def test_answer_space_counts_what_a_path_can_answer():
    """The weak-vote rule's chance level reads it: options of a choice question, labels of a
    label task, none for open answers."""
    csqa = get_task("commonsenseqa")
    assert {csqa.answer_space(e) for e in csqa.load("dev", limit=20)} == {5}
    assert get_task("anli_r1").answer_space(get_task("anli_r1").load("dev", limit=1)[0]) == 3
    assert get_task("gsm8k").answer_space(get_task("gsm8k").load("test", limit=1)[0]) is None
