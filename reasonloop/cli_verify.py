"""`reasonloop verify`: what the env's verifier says of a completion — how a task author checks
a verifier before spending compute, and how anyone checks why a stored trajectory got its
reward. One JSON object per completion; exit 0 whatever the verdict, 1 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml
from pydantic import ValidationError

from reasonloop.cliutil import ROOT, SET, _fail, _root
from reasonloop.config import Config, EnvConfig, _set_dotted, error_line, load_config
from reasonloop.envs import plugins
from reasonloop.envs.base import Problem, json_object, read_jsonl
from reasonloop.errors import ConfigError, InputError, ReasonloopError
from reasonloop.paths import Paths


def verify(config: Path | None = typer.Option(None, "--config", "-c",
                                             help="the run's YAML recipe (its env section)"),
           env: str | None = typer.Option(None, "--env", "-e",
                                          help="countdown | math | package.module:Name | "
                                               "an entry-point name"),
           problem: str | None = typer.Option(None, "--problem", "-p",
                                              help="a problem as JSON, or a problem id of "
                                                   "the env's set"),
           completion: str | None = typer.Option(None, "--completion", help="the text"),
           file: Path | None = typer.Option(None, "--file", "-f", help="JSONL: one "
                                            "{\"completion\": ..., \"problem\": {...}} a line"),
           trajectory: str | None = typer.Option(None, "--trajectory", "-t",
                                                 help="a traj_id from the workspace's store"),
           root: Path | None = ROOT, set_: list[str] = SET):
    """Print the env's verdict (correct, legal, answer, steps, step rewards) as JSON lines."""
    try:
        for line in verdicts(config, env, problem, completion, file, trajectory, root, set_):
            typer.echo(json.dumps(line))
    except ReasonloopError as e:
        _fail(e)


def verdicts(config, env_name, problem, completion, file, trajectory, root, set_) -> list:
    """Every verdict, computed before any is printed (a bad line prints nothing)."""
    if trajectory is not None:
        if config or env_name or problem or completion or file:
            raise InputError("--trajectory reads problem, text and env from the store: "
                             "give it alone (with --root)")
        return [stored(trajectory, _root(root))]
    if (completion is None) == (file is None):
        raise InputError("give --completion TEXT (with --problem) or --file FILE.jsonl")
    env = _env(config, env_name, set_)
    given = _problem(env, problem) if problem is not None else None
    if completion is not None:
        if given is None:
            raise InputError("--completion needs --problem (JSON or a problem id)")
        return [_verdict(env, given, completion)]
    items = []
    for where, row in read_jsonl(file):
        text = row.get("completion", row.get("text"))
        if not isinstance(text, str):
            raise InputError(f"{where}: missing 'completion' (string)")
        if "problem" in row:
            items.append((_problem(env, row["problem"], where), text))
        elif given is not None:
            items.append((given, text))
        else:
            raise InputError(f"{where}: no 'problem' (and no --problem for all lines)")
    return [_verdict(env, p, t) for p, t in items]


def _env(config: Path | None, name: str | None, set_: list[str]):
    """The env to judge with: a recipe's env section, or `--env` (+ `--set env.x=...`)."""
    if (config is None) == (name is None):
        raise ConfigError("give --config RECIPE or --env NAME")
    if config is not None:
        cfg = load_config(config, set_)
        if cfg.env.name == "countdown" or cfg.env.problems_file is None:
            return plugins.build(cfg.env, load=False)
        from reasonloop.workspace import env_and_problems
        return env_and_problems(cfg)[0]
    raw = {"env": {"name": name}}
    for item in set_:
        key, _, value = item.partition("=")
        if not key.startswith("env.") or not _:
            raise ConfigError(f"--set {item!r}: with --env only env.* settings apply")
        _set_dotted(raw, key, yaml.safe_load(value))
    try:         # the env section alone: math needs no model or problems file to judge
        ecfg = EnvConfig.model_validate(raw["env"])
    except ValidationError as e:
        raise ConfigError(error_line(e, prefix="env.")) from None
    plugins.validate(ecfg, from_scratch=False)
    return plugins.build(ecfg, load=False)


def _problem(env, given, where: str = "--problem") -> Problem:
    """A JSON object (the env reads it), or an id from the env's own problem set."""
    if isinstance(given, str) and not given.lstrip().startswith("{"):
        try:
            for p in env.problems():
                if p.problem_id == given:
                    return p
        except ReasonloopError:
            pass
        raise InputError(f"{where}: no problem {given!r} in env {env.name!r} (give the "
                         "problem as JSON)")
    given = json_object(given, where) if isinstance(given, str) else given
    if not isinstance(given, dict):
        raise InputError(f"{where}: expected a JSON object")
    return plugins.problem_from(env, given, where)


def _verdict(env, problem: Problem, text: str) -> dict:
    v = env.verify(problem, text)
    return {"problem_id": problem.problem_id, "correct": v.correct, "legal": v.legal,
            "answer": v.answer, "steps": v.steps, "step_rewards": v.step_rewards,
            "error": v.error}


def stored(traj: str, root: Path) -> dict:
    """A stored trajectory judged again by the env of its run, beside what was stored."""
    from reasonloop.store import db
    df = db.query(Paths(root).db, """
        SELECT t.text, t.correct, t.step_rewards, t.outcome_reward, t.verify_error,
               p.problem_id, p.split, p.prompt, p.meta, r.config_json
        FROM trajectories t JOIN problems p USING (problem_id) JOIN runs r USING (run_id)
        WHERE t.traj_id = $id""", {"id": traj})
    if not df.height:
        raise InputError(f"no trajectory {traj!r} in {Paths(root).db}")
    row = df.row(0, named=True)
    cfg = Config.model_validate_json(row["config_json"])
    env = plugins.build(cfg.env, load=False)
    problem = Problem(row["problem_id"], row["split"], row["prompt"], json.loads(row["meta"]),
                      step_sep=env.step_sep)
    return {"traj_id": traj, **_verdict(env, problem, row["text"]),
            "stored": {"correct": row["correct"], "outcome_reward": row["outcome_reward"],
                       "step_rewards": row["step_rewards"], "error": row["verify_error"]}}
