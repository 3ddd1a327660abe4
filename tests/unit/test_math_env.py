import json

import pytest

from reasonloop.config import EnvConfig
from reasonloop.envs.math import MathEnv
from reasonloop.errors import InputError


def _write(tmp_path, rows):
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return p


def test_math_env_splits_and_verifies(tmp_path):
    rows = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(40)]
    rows.append({"problem": "Half of one?", "answer": "\\frac{1}{2}", "split": "test"})
    env = MathEnv(EnvConfig(name="math", problems_file=_write(tmp_path, rows)))
    ps = env.problems()
    assert len(ps) == 41 and {p.split for p in ps} <= {"train", "val", "test"}
    half = next(p for p in ps if "Half" in p.prompt)
    assert half.split == "test"
    assert env.verify(half, "It is 0.5, so \\boxed{\\frac{1}{2}}").correct
    assert not env.verify(half, "\\boxed{3}").correct


@pytest.mark.parametrize("shape", ["{code}", "$\\boxed{{{code}}}$", "$${code}$$",
                                   "\\boxed{{\\text{{{code}}}}}", "The answer is {code}."])
def test_code_in_model_text_does_not_run(tmp_path, shape):
    """A payload that would leave a file behind if anything evaluated it."""
    env = MathEnv(EnvConfig(name="math", problems_file=_write(
        tmp_path, [{"question": "One?", "answer": "1"}])))
    mark = tmp_path / "pwned"
    for code in (f"__import__('os').system('touch {mark}')",
                 f"__import__('pathlib').Path('{mark}').touch()",
                 f"open('{mark}', 'w').write('1') or 1"):
        v = env.verify(env.problems()[0], shape.format(code=code))
        assert not v.correct
        assert not mark.exists(), code


@pytest.mark.parametrize("line, msg", [
    ("{not json", "not valid JSON"), ('{"answer": "1"}', "missing 'question'"),
    ('{"question": "q"}', "missing 'answer'"), ('[1, 2]', "JSON object"),
    ('{"question": "q", "answer": "1", "split": "holdout"}', "split")])
def test_bad_jsonl_line_is_named(tmp_path, line, msg):
    p = _write(tmp_path, ['{"question": "ok", "answer": "1"}', line])
    with pytest.raises(InputError, match=f":2: .*{msg}"):
        MathEnv(EnvConfig(name="math", problems_file=p))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        MathEnv(EnvConfig(name="math", problems_file=tmp_path / "none.jsonl"))
