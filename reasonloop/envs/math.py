"""Math word problems from a JSONL file, verified with math-verify — the real path.

Each line: {"question": ..., "answer": ...} (also accepted: "problem" for the question) and
optionally "split": train|val|test; without it the split is a deterministic hash of the
question. Only LaTeX extraction is used on model text (math-verify's expression extractor
goes through sympy's `parse_expr`, which evaluates Python — model text is never evaluated).
There is no step oracle here: PRM labels for math come from Monte-Carlo rollouts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from reasonloop.envs.base import Problem, Verdict, read_jsonl, split_steps
from reasonloop.envs.math_judge import judge_anywhere
from reasonloop.errors import InputError

INSTRUCTION = "Reason step by step, steps separated by blank lines; end with \\boxed{answer}."
PROMPT = "Question: {question}\nAnswer (end with \\boxed{{...}}):\n"  # ends on a token boundary
SPLITS = ("train", "val", "test")
STEP_SEP = "\n\n"          # a step is a paragraph: PRM labels, step-level search


def load_jsonl(path: Path, question_field: str | None = None,
               answer_field: str | None = None) -> list[dict]:
    """Validated rows; the first bad line is reported with its number, nothing half-read.
    Field names are configurable; by default `question` or `problem` (GSM8K, MATH) and
    `answer` or `solution`."""
    qf = (question_field,) if question_field else ("question", "problem")
    af = (answer_field,) if answer_field else ("answer", "solution")
    rows = []
    for where, row in read_jsonl(path):
        q = next((row[f] for f in qf if f in row), None)
        if not isinstance(q, str) or not q.strip():
            raise InputError(f"{where}: missing {' or '.join(map(repr, qf))} (string)")
        a = next((row[f] for f in af if f in row), None)
        if a is None or not str(a).strip():
            raise InputError(f"{where}: missing {' or '.join(map(repr, af))}")
        row = {**row, "answer": a}
        if row.get("split") not in (None, *SPLITS):
            raise InputError(f"{where}: split must be one of {SPLITS}")
        rows.append({"question": q, "answer": str(row["answer"]), "split": row.get("split")})
    if not rows:
        raise InputError(f"{path}: no problems")
    return rows


def gold_answer(answer: str) -> str:
    """The reference answer as LaTeX: GSM8K's `... #### 42` → 42; a MATH solution keeps its
    `\\boxed{}`; a bare answer is wrapped in $...$."""
    if "####" in answer:
        return "$" + answer.rsplit("####", 1)[1].strip().replace(",", "") + "$"
    if "\\boxed" in answer:
        return answer
    return f"${answer}$"


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

    def __init__(self, cfg, tokenizer=None):
        """`tokenizer`: the policy's; when it has a chat template, prompts are built with
        it (an instruct model sees a user turn), else the plain `Question: ... Answer:`."""
        if cfg.problems_file is None:
            raise InputError("env 'math' needs env.problems_file (a JSONL of question/answer)")
        self.cfg = cfg
        self.rows = load_jsonl(cfg.problems_file, cfg.question_field, cfg.answer_field)
        self.tokenizer = tokenizer if getattr(tokenizer, "chat_template", None) else None

    def prompt(self, question: str) -> str:
        return math_prompt(question, self.tokenizer)

    def problems(self) -> list[Problem]:
        out = []
        for r in self.rows:
            h = hashlib.sha1(r["question"].encode()).hexdigest()
            split = r["split"] or ("test" if int(h[:8], 16) % 10 == 0 else
                                   "val" if int(h[:8], 16) % 10 == 1 else "train")
            out.append(Problem(f"math-{h[:12]}", split, self.prompt(r["question"]),
                               {"answer": r["answer"]}, step_sep=STEP_SEP))
        return out

    def verify(self, problem: Problem, completion: str) -> Verdict:
        ok, answer = judge_anywhere(gold_answer(problem.meta["answer"]), completion)
        return Verdict(correct=ok, steps=split_steps(completion, STEP_SEP), step_rewards=[],
                       answer=answer, legal=answer is not None)

    def feedback(self, problem: Problem, completion: str) -> str | None:
        """Outcome-only feedback for revision (no step oracle for free-form math)."""
        v = self.verify(problem, completion)
        if v.correct:
            return None
        return "no final answer found" if v.answer is None else f"the answer {v.answer} is wrong"
