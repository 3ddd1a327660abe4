"""Math word problems from a file, verified with math-verify — the real path.

Each row: {"question": ..., "answer": ...} (also accepted: "problem" for the question) and
optionally "split": train|val|test; without it the split is a deterministic hash of the
question (envs/sources.py: JSONL, Parquet, CSV or a Hugging Face dataset directory). An
`env.answer_check` function judges answer formats math-verify does not cover.

Only LaTeX extraction is used on model text (math-verify's expression extractor goes
through sympy's `parse_expr`, which evaluates Python — model text is never evaluated).
There is no step oracle here: PRM labels for math come from Monte-Carlo rollouts.
"""

from __future__ import annotations

import hashlib

from reasonloop.envs.base import Problem, Verdict, split_steps
from reasonloop.envs.imports import plugins_import
from reasonloop.envs.math_judge import judge_anywhere
from reasonloop.envs.sources import held_out_split, read_rows, split_of
from reasonloop.errors import ConfigError, InputError

INSTRUCTION = "Reason step by step, steps separated by blank lines; end with \\boxed{answer}."
PROMPT = "Question: {question}\nAnswer (end with \\boxed{{...}}):\n"  # ends on a token boundary
STEP_SEP = "\n\n"          # a step is a paragraph: PRM labels, step-level search


def load_rows(cfg) -> list[dict]:
    """Validated rows of `cfg.problems_file` (any source in envs/sources.py); the first bad
    row is named, nothing half-read. Field names are configurable; by default `question` or
    `problem` (GSM8K, MATH) and `answer` or `solution`."""
    qf = (cfg.question_field,) if cfg.question_field else ("question", "problem")
    af = (cfg.answer_field,) if cfg.answer_field else ("answer", "solution")
    rows = []
    for where, row, file_split in read_rows(cfg.problems_file):
        q = next((row[f] for f in qf if f in row), None)
        if not isinstance(q, str) or not q.strip():
            raise InputError(f"{where}: missing {' or '.join(map(repr, qf))} (string)")
        a = next((row[f] for f in af if f in row), None)
        if a is None or not str(a).strip():
            raise InputError(f"{where}: missing {' or '.join(map(repr, af))}")
        key = q if cfg.holdout_field is None else row.get(cfg.holdout_field)
        if key is None:
            raise InputError(f"{where}: missing {cfg.holdout_field!r} (env.holdout_field)")
        split = split_of(where, row, file_split, cfg.split_field) or held_out_split(
            str(key), cfg.val_fraction, cfg.test_fraction)
        rows.append({"question": q, "answer": str(a), "split": split})
    if not rows:
        raise InputError(f"{cfg.problems_file}: no problems")
    return rows


def gold_answer(answer: str) -> str:
    """The reference answer as LaTeX: GSM8K's `... #### 42` → 42; a MATH solution keeps its
    `\\boxed{}`; a bare answer is wrapped in $...$."""
    if "####" in answer:
        return "$" + answer.rsplit("####", 1)[1].strip().replace(",", "") + "$"
    if "\\boxed" in answer:
        return answer
    return f"${answer}$"


def plain_gold(answer: str) -> str:
    """The reference answer as text for an `answer_check`: GSM8K's `... #### 42` → 42, a
    solution's last `\\boxed{}` → its content, else the answer as given."""
    if "####" in answer:
        return answer.rsplit("####", 1)[1].strip()
    return last_boxed(answer) or answer.strip()


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (braces balanced), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{") - 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1: j].strip()
    return None


def answer_check(ref: str):
    """`package.module:function` → the function (a `.py` path works too); not callable → one
    line."""
    fn = plugins_import(ref, "env.answer_check")
    if not callable(fn):
        raise ConfigError(f"env.answer_check {ref!r} is not callable "
                          f"(a {type(fn).__name__})")
    return fn


def _bool(value, ref: str) -> bool:
    if not isinstance(value, bool | int) or value not in (0, 1):
        raise TypeError(f"answer_check {ref} returned {type(value).__name__}, not bool")
    return bool(value)


def math_prompt(question: str, tokenizer=None) -> str:
    """The policy's prompt: a user turn where the tokenizer has a chat template, else the
    plain `Question: ... Answer:`."""
    if not getattr(tokenizer, "chat_template", None):
        return PROMPT.format(question=question)
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": f"{question}\n{INSTRUCTION}"}], tokenize=False,
        add_generation_prompt=True)


class MathEnv:
    name = "math"
    step_sep = STEP_SEP
    answer_check = None       # env.answer_check's function; None: math-verify

    def __init__(self, cfg, tokenizer=None, load: bool = True):
        """`tokenizer`: the policy's; when it has a chat template, prompts are built with
        it (an instruct model sees a user turn), else the plain `Question: ... Answer:`.
        `load=False`: a judge only (`reasonloop verify`), no problems file read."""
        if cfg.problems_file is None and load:
            raise InputError("env 'math' needs env.problems_file (a JSONL of question/answer)")
        self.cfg = cfg
        self.rows = load_rows(cfg) if load else []
        self.tokenizer = tokenizer if getattr(tokenizer, "chat_template", None) else None
        self.answer_check = answer_check(cfg.answer_check) if cfg.answer_check else None

    def prompt(self, question: str) -> str:
        return math_prompt(question, self.tokenizer)

    def problems(self) -> list[Problem]:
        out = []
        seen = set()
        for r in self.rows:
            h = hashlib.sha1(r["question"].encode()).hexdigest()
            if h in seen:        # the same question twice: one problem (ids key the store)
                continue
            seen.add(h)
            out.append(Problem(f"math-{h[:12]}", r["split"], self.prompt(r["question"]),
                               {"answer": r["answer"]}, step_sep=STEP_SEP))
        return out

    def problem_from(self, row: dict) -> Problem:
        """`{"question": ..., "answer": ...}` → a problem (for `reasonloop verify`)."""
        q = row.get("question", row.get("problem"))
        a = row.get("answer", row.get("solution"))
        if not isinstance(q, str) or a is None:
            raise ValueError('a math problem is {"question": text, "answer": the gold answer}')
        return Problem("given", "given", self.prompt(q), {"answer": str(a)}, step_sep=STEP_SEP)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        if self.answer_check is not None:
            answer = last_boxed(completion)
            ok = answer is not None and _bool(self.answer_check(
                plain_gold(problem.meta["answer"]), answer), self.cfg.answer_check)
            return Verdict(correct=ok, steps=split_steps(completion, STEP_SEP),
                           step_rewards=[], answer=answer, legal=answer is not None)
        ok, answer = judge_anywhere(gold_answer(problem.meta["answer"]), completion)
        return Verdict(correct=ok, steps=split_steps(completion, STEP_SEP), step_rewards=[],
                       answer=answer, legal=answer is not None)

    def feedback(self, problem: Problem, completion: str) -> str | None:
        """Outcome-only feedback for revision (no step oracle for free-form math)."""
        v = self.verify(problem, completion)
        if v.correct:
            return None
        return "no final answer found" if v.answer is None else f"the answer {v.answer} is wrong"
