"""Problem sources for math-like tasks: the same problems from JSONL, Parquet, CSV and a local
Hugging Face dataset (saved, or a directory of files named by split); splits from the file
or from the held-out rules; a bad file named with its row; custom answer checks."""

import hashlib
import json

import datasets
import polars as pl
import pytest

from reasonloop.config import EnvConfig, load_config
from reasonloop.envs import plugins
from reasonloop.envs.math import MathEnv, last_boxed, plain_gold
from reasonloop.envs.sources import held_out_split
from reasonloop.errors import ConfigError, InputError

ROWS = [{"question": f"What is {i} + {i}?", "answer": str(2 * i),
         "split": ["train", "val", "test", None][i % 4], "topic": f"t{i % 5}"}
        for i in range(40)]


def _env(path, **kw) -> MathEnv:
    return MathEnv(EnvConfig(name="math", problems_file=path, **kw))


def _write_all(tmp_path) -> dict:
    df = pl.DataFrame(ROWS)
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    df.write_parquet(tmp_path / "p.parquet")
    df.write_csv(tmp_path / "p.csv")
    return {k: tmp_path / f"p.{k}" for k in ("jsonl", "parquet", "csv")}


def test_jsonl_parquet_and_csv_give_the_same_problems(tmp_path):
    files = _write_all(tmp_path)
    seen = {k: [(p.problem_id, p.split, p.prompt, p.meta["answer"]) for p in
                _env(f).problems()] for k, f in files.items()}
    assert seen["jsonl"] == seen["parquet"] == seen["csv"]
    assert len(seen["jsonl"]) == 40
    given = {r["question"]: r["split"] for r in ROWS}
    env = _env(files["csv"])
    for r in env.rows:
        assert r["split"] == (given[r["question"]] or held_out_split(r["question"], .1, .1))


def test_a_saved_dataset_dict_brings_its_splits(tmp_path):
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"problem": "1+1?", "solution": "\\boxed{2}"},
                                             {"problem": "2+2?", "solution": "\\boxed{4}"}]),
        "validation": datasets.Dataset.from_list([{"problem": "3+3?", "solution": "6"}]),
        "test": datasets.Dataset.from_list([{"problem": "4+4?", "solution": "8"}])})
    dd.save_to_disk(str(tmp_path / "ds"))
    splits = {p.meta["answer"]: p.split for p in _env(tmp_path / "ds").problems()}
    assert splits == {"\\boxed{2}": "train", "\\boxed{4}": "train", "6": "val", "8": "test"}


def test_a_dataset_directory_of_files_named_by_split(tmp_path):
    """What a downloaded dataset repo looks like: data/train-00000-of-00001.parquet."""
    (tmp_path / "gsm" / "data").mkdir(parents=True)
    pl.DataFrame([{"question": "a?", "answer": "x #### 1"}, {"question": "b?", "answer":
                  "#### 2"}]).write_parquet(tmp_path / "gsm/data/train-00000-of-00001.parquet")
    pl.DataFrame([{"question": "c?", "answer": "#### 3"}]).write_parquet(
        tmp_path / "gsm/data/test-00000-of-00001.parquet")
    env = _env(tmp_path / "gsm")
    assert sorted((p.split, p.meta["answer"]) for p in env.problems()) == [
        ("test", "#### 3"), ("train", "#### 2"), ("train", "x #### 1")]
    first = env.problems()[0]
    assert env.verify(first, "\\boxed{" + plain_gold(first.meta["answer"]) + "}").correct


def test_held_out_rules_split_by_a_field_and_by_fractions(tmp_path):
    rows = [{**r, "split": None} for r in ROWS]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    env = _env(tmp_path / "p.jsonl", holdout_field="topic", val_fraction=0.2,
               test_fraction=0.4)
    by_topic = {}
    for r in env.rows:
        topic = next(x["topic"] for x in rows if x["question"] == r["question"])
        by_topic.setdefault(topic, set()).add(r["split"])
    assert all(len(s) == 1 for s in by_topic.values())     # a group never crosses splits
    # at the default 0.1 / 0.1 the split is sha1 mod 10, as before the fractions existed
    for q in (f"question {i}" for i in range(300)):
        h = int(hashlib.sha1(q.encode()).hexdigest()[:8], 16) % 10
        assert held_out_split(q, .1, .1) == ("test" if h == 0 else "val" if h == 1 else
                                             "train")
    with pytest.raises(ConfigError, match="val_fraction \\+ env.test_fraction"):
        load_config(None, ["env.val_fraction=0.5", "env.test_fraction=0.5"])


@pytest.mark.parametrize("kind, content, match", [
    ("csv", "question,answer\nq1,1\nq2,\n", r"p\.csv:line 3: missing 'answer'"),
    ("csv", "question,answer\nq1,1,extra,more\n", r"p\.csv: cannot read as csv"),
    ("parquet", [{"question": "q", "answer": "1"}, {"question": "", "answer": "2"}],
     r"p\.parquet:row 2: missing 'question'"),
    ("jsonl", '{"question": "q", "answer": "1", "split": "holdout"}',
     r"p\.jsonl:1: split must be one of train, val, test \(got 'holdout'\)"),
    ("parquet", b"PAR1 not really", r"p\.parquet: cannot read as parquet"),
    ("txt", "q,a", r"unsupported problems file"),
])
def test_a_bad_file_is_named_with_its_row(tmp_path, kind, content, match):
    f = tmp_path / f"p.{kind}"
    if isinstance(content, list):
        pl.DataFrame(content).write_parquet(f)
    elif isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    with pytest.raises(InputError, match=match) as e:
        _env(f)
    assert "\n" not in str(e.value)


def test_a_dataset_row_is_named_too(tmp_path):
    datasets.Dataset.from_list([{"question": "q", "answer": "1"}, {"question": "r",
                                "answer": None}]).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(InputError, match=r"ds:row 2: missing 'answer'"):
        _env(tmp_path / "ds")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no dataset here"):
        _env(tmp_path / "empty")


CHECKS = '''
def choice(gold, answer):
    """Multiple choice: the letter, in any case, with or without brackets."""
    return answer.strip("() ").upper() == gold.strip().upper()

def speed(gold, answer):
    """A value with a unit: 90 km/h is 25 m/s."""
    value, unit = answer.split()
    factor = {"km/h": 1 / 3.6, "m/s": 1.0}[unit]
    return abs(float(value) * factor - float(gold)) < 1e-6

def maybe(gold, answer):
    return "yes"

NOT_A_FUNCTION = 42
'''


def test_an_answer_check_judges_formats_math_verify_does_not(tmp_path):
    (tmp_path / "checks.py").write_text(CHECKS)
    (tmp_path / "p.jsonl").write_text('{"question": "Which? (A) 1 (B) 2", "answer": "B"}\n'
                                      '{"question": "How fast?", "answer": "#### 25"}\n')
    ref = f"{tmp_path / 'checks.py'}"
    choice = plugins.build(EnvConfig(name="math", problems_file=tmp_path / "p.jsonl",
                                     answer_check=f"{ref}:choice"))
    p = choice.problems()[0]
    assert choice.verify(p, "so the answer is \\boxed{(b)}").correct
    assert not choice.verify(p, "\\boxed{A}").correct
    assert choice.verify(p, "no box").answer is None
    speed = plugins.build(EnvConfig(name="math", problems_file=tmp_path / "p.jsonl",
                                    answer_check=f"{ref}:speed"))
    q = speed.problems()[1]
    assert speed.verify(q, "\\boxed{90 km/h}").correct
    assert speed.verify(q, "\\boxed{25 m/s}").correct
    v = speed.verify(q, "\\boxed{fast}")                     # the check raised on this text
    assert not v.correct and v.error.startswith("ValueError")
    maybe = plugins.build(EnvConfig(name="math", problems_file=tmp_path / "p.jsonl",
                                    answer_check=f"{ref}:maybe"))
    assert "returned str, not bool" in maybe.verify(p, "\\boxed{B}").error
    with pytest.raises(ConfigError, match="is not callable \\(a int\\)"):
        MathEnv(EnvConfig(name="math", problems_file=tmp_path / "p.jsonl",
                          answer_check=f"{ref}:NOT_A_FUNCTION"))
    with pytest.raises(ConfigError, match="has no 'nothing'"):
        MathEnv(EnvConfig(name="math", problems_file=tmp_path / "p.jsonl",
                          answer_check=f"{ref}:nothing"))
    with pytest.raises(ConfigError, match="answer_check is read by env 'math' only"):
        load_config(None, [f"env.answer_check={ref}:choice"])


def test_boxed_extraction_balances_braces():
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{1}{2}} end") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{unclosed") is None and last_boxed("none") is None
    assert plain_gold("steps\n#### 1,000") == "1,000" and plain_gold("\\boxed{x}") == "x"
