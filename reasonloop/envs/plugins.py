"""Which env a config names, and building it: the built-in ones, a `package.module:Name` (or
`path/to/file.py:Name`) reference, or a name registered under the `reasonloop.envs`
entry-point group by an installed package. A task is a small file in the user's own code.

The contract (the `Env` protocol in envs/base.py) is checked when the env is built, so a
plugin that does not satisfy it fails in one line naming what is missing — before a run
writes anything.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import replace
from pathlib import Path

from pydantic import BaseModel, ValidationError

from reasonloop.envs.base import Problem, Verdict, read_jsonl, split_steps
from reasonloop.envs.countdown import Countdown
from reasonloop.envs.imports import first_line, plugins_import
from reasonloop.envs.math import MathEnv
from reasonloop.errors import ConfigError, InputError

GROUP = "reasonloop.envs"               # the entry-point group plugins register under
BUILTIN = {"countdown": Countdown, "math": MathEnv}
REQUIRED = ("problems", "verify")       # methods every env has
ATTRIBUTES = ("name", "step_sep")       # ... and attributes (strings)
# env keys every env reads; the others are Countdown's and math's (a plugin: env.options)
SHARED_KEYS = {"name", "options", "seed"}


def resolve(name: str):
    """The env factory `name` stands for: a class (or any callable returning an env)."""
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name:
        return plugins_import(name, "env")
    eps = importlib.metadata.entry_points(group=GROUP)
    found = [ep for ep in eps if ep.name == name]
    if not found:
        known = sorted({*BUILTIN, *(ep.name for ep in eps)})
        raise ConfigError(f"env {name!r} is not built in or registered (known: "
                          f"{', '.join(known)}); a plugin is named package.module:Name")
    try:
        return found[0].load()
    except Exception as e:       # noqa: BLE001 — any import failure of user code, one line
        raise ConfigError(f"env {name!r} ({found[0].value}) does not import: "
                          f"{type(e).__name__}: {first_line(e)}") from None


def options_model(factory) -> type[BaseModel] | None:
    """The pydantic model an env declares for its `env.options` (class attribute `Options`)."""
    model = getattr(factory, "Options", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def options(name: str, factory, given: dict) -> BaseModel | None:
    """`env.options` validated by the env's own model; unknown keys fail in one line."""
    model = options_model(factory)
    if model is None:
        if given:
            raise ConfigError(f"env.options: env {name!r} takes no options (it declares no "
                              f"Options model); got {sorted(given)}")
        return None
    unknown = sorted(set(given) - set(model.model_fields))
    if unknown:
        raise ConfigError(f"env.options.{unknown[0]}: not a setting of env {name!r} "
                          f"(known: {', '.join(model.model_fields) or 'none'})")
    try:
        return model.model_validate(given)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"env.options.{where}: {err['msg']} "
                          f"(got {err.get('input')!r})") from None


def check(env, name: str):
    """The `Env` protocol, checked on a built env: the first thing missing, in one line."""
    for attr in ATTRIBUTES:
        if not isinstance(getattr(env, attr, None), str):
            raise ConfigError(f"env {name!r} does not satisfy the Env protocol: attribute "
                              f"{attr!r} (a string) is missing")
    for meth in REQUIRED:
        if not callable(getattr(env, meth, None)):
            raise ConfigError(f"env {name!r} does not satisfy the Env protocol: method "
                              f"{meth!r} is missing")
    for meth in ("warmup_examples", "feedback", "relabel", "correct", "problem_from"):
        if hasattr(env, meth) and not callable(getattr(env, meth)):
            raise ConfigError(f"env {name!r}: {meth!r} must be a method")
    return env


# Optional hooks that read model text (and may call the env's own, unguarded verify): where
# one raises, that text gets no feedback / no hindsight / no correction, and the run goes on.
QUIET = ("feedback", "relabel", "correct")


def _quiet(fn):
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:   # noqa: BLE001 — user code on model text
            return None
    return call


class Guarded:
    """An env whose `verify` cannot stop a run: a raise on some text is that text's verdict
    (incorrect, the error kept); a verdict of the wrong shape is the env's bug and stops
    the run in one line before anything of it is stored. Everything else is the env's."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, attr):
        if attr == "_env":         # not set yet (unpickling): no recursion
            raise AttributeError(attr)
        value = getattr(self._env, attr)
        return _quiet(value) if attr in QUIET and callable(value) else value

    def verify(self, problem: Problem, completion: str) -> Verdict:
        try:
            v = self._env.verify(problem, completion)
        except Exception as e:   # noqa: BLE001 — user code on model text
            return Verdict(correct=False, steps=split_steps(completion, self._env.step_sep),
                           step_rewards=[], answer=None, legal=False,
                           error=f"{type(e).__name__}: {first_line(e)}"[:500])
        return checked_verdict(v, self._env.name)


def checked_verdict(v, name: str) -> Verdict:
    if not isinstance(v, Verdict):
        raise InputError(f"env {name!r}: verify returned {type(v).__name__}, not a "
                         "reasonloop.envs.base.Verdict")
    if not isinstance(v.correct, bool) or not isinstance(v.legal, bool):
        raise InputError(f"env {name!r}: Verdict.correct and .legal must be bool (got "
                         f"{type(v.correct).__name__}, {type(v.legal).__name__})")
    if v.step_rewards and len(v.step_rewards) != len(v.steps):
        raise InputError(f"env {name!r}: Verdict has {len(v.step_rewards)} step rewards for "
                         f"{len(v.steps)} steps (one per step, or none)")
    return v


def validate(ecfg, from_scratch: bool, augment: bool = False, init_data: str = "plays") -> None:
    """A plugin env's part of the config, checked at load: it imports, its options validate,
    it has no Countdown/math settings, and a from-scratch policy has warm-up data; any env
    asked to augment BC data can, and one asked for a kind of warm-up data has it."""
    if augment and not callable(getattr(resolve(ecfg.name), "augment", None)):
        raise ConfigError(f"learn.augment: env {ecfg.name!r} has no "
                          "augment(prompt, completion, rng)")
    kinds = getattr(resolve(ecfg.name), "warmup_kinds", ("plays",))
    if from_scratch and init_data not in kinds:
        raise ConfigError(f"policy.init_data: env {ecfg.name!r} has no {init_data!r} warm-up "
                          f"data (it has: {', '.join(kinds)})")
    if ecfg.name in BUILTIN:
        if ecfg.options:
            raise ConfigError(f"env.options: the built-in env {ecfg.name!r} takes its "
                              "settings as env keys")
        return
    misplaced = sorted(ecfg.model_fields_set - SHARED_KEYS)
    if misplaced:
        raise ConfigError(f"env.{misplaced[0]} is a setting of the built-in envs; env "
                          f"{ecfg.name!r} takes its settings under env.options")
    factory = resolve(ecfg.name)
    options(ecfg.name, factory, ecfg.options)
    if from_scratch and not callable(getattr(factory, "warmup_examples", None)):
        raise ConfigError(f"env {ecfg.name!r} has no warmup_examples(n, seed) to initialise "
                          "a policy from scratch: set policy.path (a local HF model dir)")


def build(ecfg, tokenizer=None, load: bool = True):
    """The env an `env:` config section describes, checked against the protocol.
    `load=False`: to judge given problems only (math reads no problems file)."""
    if ecfg.name == "countdown":
        return Guarded(Countdown(ecfg))
    if ecfg.name == "math":
        return Guarded(MathEnv(ecfg, tokenizer, load))   # prompts in the model's template
    factory = resolve(ecfg.name)
    opts = options(ecfg.name, factory, ecfg.options)
    try:
        env = factory(opts) if opts is not None else factory()
    except (ConfigError, InputError):
        raise
    except Exception as e:       # noqa: BLE001 — user code failing to construct, one line
        raise ConfigError(f"env {ecfg.name!r} could not be built: {type(e).__name__}: "
                          f"{first_line(e)}") from None
    return Guarded(check(env, ecfg.name))


def problem_from(env, row: dict, where: str = "problem") -> Problem:
    """A problem from a JSON object a user typed (`reasonloop verify --problem`): the env's
    own `problem_from` where it has one, else `prompt` plus the object as meta. Errors
    name `where` (the option, or a file line)."""
    make = getattr(env, "problem_from", None)
    if make is not None:
        try:
            problem = make(row)
        except Exception as e:   # noqa: BLE001 — the env's own check of a problem, one line
            raise InputError(f"{where}: {first_line(e)}") from None
        if not isinstance(problem, Problem):
            raise InputError(f"env {env.name!r}: problem_from returned "
                             f"{type(problem).__name__}, not a Problem")
        return problem
    if not isinstance(row.get("prompt", ""), str):
        raise InputError(f"{where}: 'prompt' must be a string")
    return Problem(str(row.get("problem_id", "given")), "given", row.get("prompt", ""),
                   dict(row.get("meta", row)), step_sep=env.step_sep)


def problems_file(env, path) -> list[Problem]:
    """A user's JSONL of problems for `env` (one JSON object a line, as `problem_from`
    reads it; Countdown: {"numbers", "target"}), validated whole; the first bad line is
    named. Split "file"; the same problem twice counts once."""
    if not callable(getattr(env, "problem_from", None)):
        raise InputError(f"env {env.name!r} has no problem_from(row): it cannot read a "
                         "problems file")
    out, seen = [], set()
    for where, row in read_jsonl(path):
        p = problem_from(env, row, where)
        if p.problem_id == "given":     # an env without ids of its own: the line's number
            p = replace(p, problem_id=f"{Path(path).stem}-{where.rsplit(':', 1)[1]}")
        if p.problem_id not in seen:
            seen.add(p.problem_id)
            out.append(replace(p, split="file"))
    if not out:
        raise InputError(f"{path}: no problems")
    return out
