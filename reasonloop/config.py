"""One typed config for the whole flywheel: a short YAML recipe in, validated, printed.

Unknown keys are errors (a typo must not silently fall back to a default). CLI overrides
(`key.sub=value`) are applied last.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reasonloop.envs import plugins
from reasonloop.errors import ConfigError

# `auto`: decided by the machine the run is on (reasonloop/compute.py), recorded per run.
Threads = Annotated[int, Field(ge=1)] | Literal["auto"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvConfig(_Section):
    # built in: countdown | math; a plugin: package.module:Name, path/to/file.py:Name, or a
    # name an installed package registers under the `reasonloop.envs` entry points
    name: str = Field("countdown", min_length=1)
    options: dict = {}                  # a plugin env's own settings (validated by its Options)
    seed: int = 0
    n_numbers: int = Field(3, ge=2, le=6)
    number_min: int = Field(1, ge=1)
    number_max: int = Field(20, ge=1, le=10**6)    # the ranges problem files accept too
    target_min: int = Field(10, ge=0)
    target_max: int = Field(100, ge=1, le=10**7)
    test_target_fraction: float = Field(0.1, gt=0, lt=1)  # held-out targets → test split
    n_train: int = Field(20000, ge=1)   # the pool; each iteration draws from it
    n_val: int = Field(300, ge=1)
    n_test: int = Field(500, ge=1)
    problems_file: Path | None = None   # math env: JSONL with question/answer
    question_field: str | None = None   # None: "question" or "problem" (GSM8K / MATH)
    answer_field: str | None = None     # None: "answer" (GSM8K `#### N` ok) or "solution"
    # math: problems_file is JSONL, Parquet, CSV or a local Hugging Face dataset directory;
    # a row's split comes from `split_field` (a dataset's own splits count too), else
    # from a hash of `holdout_field` (default: the question) — rows sharing its value share
    # a split, so a held-out group (a template, a source) never leaks into training
    split_field: str = "split"
    holdout_field: str | None = None
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, gt=0, lt=1)
    # math: `package.module:function(gold, extracted) -> bool` judges instead of math-verify
    # (units, choice letters, sets, labels); it is given the text of the last \boxed{}
    answer_check: str | None = None

    @model_validator(mode="after")
    def _ranges(self):
        if self.number_min > self.number_max:
            raise ValueError("env.number_min must be <= env.number_max")
        if self.target_min > self.target_max:
            raise ValueError("env.target_min must be <= env.target_max")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("env.val_fraction + env.test_fraction must be < 1")
        return self


class PolicyConfig(_Section):
    path: Path | None = None          # an existing HF causal LM dir; None → build from scratch
    # policy init continued from a saved policy dir instead of a fresh Llama: BC it on
    # init_data (e.g. teach a direct-answer policy to search in traces); positions → context
    init_from: Path | None = None
    hidden_size: int = Field(128, ge=8)
    n_layers: int = Field(4, ge=1)
    n_heads: int = Field(4, ge=1)
    init_examples: int = Field(60000, ge=1)   # BC warm-up examples
    # the warm-up data: random legal plays (format and arithmetic); goal_plays, the same plays
    # shown with the value they reached as target (hindsight at init: format, arithmetic and
    # aiming); or search traces that teach searching in the policy's own output: attempts,
    # checks, dead ends, backtracking; goal_traces: traces around goal plays (hindsight);
    # dfs_traces: a systematic depth-first search in a fixed order (every first step tried
    # until one solves: the only choice left to the policy is each branch's last step)
    init_data: Literal["plays", "goal_plays", "traces", "goal_traces", "dfs_traces"] = "plays"
    trace_backtracks: int = Field(1, ge=0)    # traces: each explores 0..this dead ends
    # dfs_traces: the share of solving branches that first write their closest miss, check
    # it and go back to retry (so the check must read the result, not trust the aim)
    trace_retries: float = Field(0.0, ge=0.0, le=1.0)
    context: int = Field(128, ge=16)          # a built policy's positions: prompt + output
    init_steps: int = Field(600, ge=1)
    init_batch_size: int = Field(128, ge=1)
    init_lr: float = Field(2e-3, gt=0)
    engine: Literal["lean", "hf", "vllm"] = "lean"
    dtype: Literal["auto", "bf16", "fp32"] = "auto"   # the lean sampler's; auto: bf16 where
                                                      # the CPU has it natively, else fp32
    max_new_tokens: int = Field(48, ge=1)
    # vllm engine: the share of GPU memory its weights + KV cache take (on CPU: of free RAM,
    # at most 40%). It is closed before every training or fitting stage and started again after
    vllm_memory: float = Field(0.5, gt=0, le=0.95)
    vllm_max_model_len: int | None = Field(None, ge=16)  # None: the model's positions
    # same seed, same samples: vLLM's engine core in this process (deterministic scheduling);
    # false: its own process, which overlaps scheduling with the GPU but varies run to run
    vllm_reproducible: bool = True


SEARCH_METHODS = Literal["best_of_n", "beam", "dvts", "mcts", "revise"]
TEST_TIME_METHODS = Literal["best_of_n", "majority", "weighted_bon", "orm_bon", "orm_weighted",
                            "beam", "beam_orm", "dvts", "mcts", "revise"]


class SearchConfig(_Section):
    method: SEARCH_METHODS = "best_of_n"
    n: int = Field(16, ge=1)           # budget per problem: samples (BoN), step proposals per
                                       # depth (beam, DVTS), simulations (MCTS), attempts (revise)
    beam_width: int = Field(4, ge=1)   # beam: kept prefixes; DVTS: n // width sub-trees
    mcts_expand: int = Field(4, ge=1)  # MCTS: next steps sampled per expansion
    mcts_c_puct: float = Field(1.0, ge=0)
    mcts_value: Literal["prm", "rollout"] = "prm"
    mcts_token_budget: int | None = Field(None, ge=1)
    revise_rounds: int = Field(4, ge=1)   # revision: attempts per chain
    prm_aggregation: Literal["last", "min", "prod"] = "min"   # a trajectory's PRM score
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    problems_per_iteration: int = Field(2000, ge=1)
    # sample allocation (stages/generate.py): unseen problems first, then
    # learnable: partly solved ones (0 < solve rate < 1), then the rest, least searched first;
    # unsolved: never-solved ones first, then solved; random: any order
    allocation: Literal["learnable", "unsolved", "random"] = "learnable"
    shards: int = Field(4, ge=1)


class FilterConfig(_Section):
    max_per_problem: int = Field(4, ge=1)
    hindsight: bool = True             # relabel legal misses with the value they reached
    max_hindsight: int = Field(6000, ge=0)
    prefer_shorter: bool = False       # keep a problem's shortest correct texts (traces: the
                                       # fewest dead ends), not a random few
    revision_examples: int = Field(2000, ge=0)  # failed attempt + feedback → a correct one
    corrections: int = Field(0, ge=0)  # BC on the env's repair of failed problems (an oracle
                                       # env: Countdown), at most this many, one per problem


PHASES = Literal["bc", "dpo", "grpo"]


class DPOLearnConfig(_Section):
    """Preferences from D_search (filter stage); reference = the policy before the update."""
    beta: float = Field(0.1, gt=0)
    loss_type: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    # + weight × NLL of the chosen (RPO, Pang et al. 2024): plain DPO pushed both answers'
    # likelihood down and collapsed the tiny policy (val pass@1 44% → 8%, benchmarks/learning)
    sft_weight: float = Field(1.0, ge=0)
    pairs_per_problem: int = Field(4, ge=0)       # correct vs incorrect, same problem
    step_pairs_per_problem: int = Field(4, ge=0)  # shared prefix, parting at the first bad step
    correction_pairs_per_problem: int = Field(0, ge=0)  # the same, the env's repair as chosen
    max_pairs: int = Field(20000, ge=1)
    steps: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-5, gt=0)   # 1e-4 overfit the pairs (val 44% → 38%) even with sft_weight


class GRPOLearnConfig(_Section):
    """Online RL on the train split: reward = verifier outcome + `reward.shaping` terms."""
    algorithm: Literal["grpo", "rloo"] = "grpo"
    steps: int = Field(200, ge=1)
    prompts_per_step: int = Field(16, ge=1)
    num_generations: int = Field(8, ge=2)          # the group whose mean is the baseline
    beta: float = Field(0.0, ge=0)                 # KL to the reference (0: no reference)
    epsilon: float = Field(0.2, gt=0)              # PPO clip
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = "dapo"
    temperature: float = Field(1.0, gt=0)
    lr: float = Field(5e-5, gt=0)   # 3e-4 collapsed the tiny policy (train reward 0.39 → 0.24)
    # memory (the GPU recipes size these): TRL's colocated vLLM share of the GPU, its sleep
    # mode (weights and KV cache offloaded during the optimizer step), and the micro-batch
    # of sequences per forward/backward (None: all prompts_per_step × num_generations at once;
    # the rest accumulates — one optimizer step per generation either way)
    vllm_memory: float = Field(0.3, gt=0, le=0.95)
    vllm_sleep: bool = False
    micro_batch: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _micro(self):
        total = self.prompts_per_step * self.num_generations
        if self.micro_batch is not None and total % self.micro_batch:
            raise ValueError(f"learn.grpo.micro_batch must divide prompts_per_step × "
                             f"num_generations = {total}")
        return self


class LearnConfig(_Section):
    # Phases in order; the next one starts when none of the phase's last `patience`
    # iterations gained `plateau` of val pass@1 over the one before them, or after
    # `max_iterations` in a phase. `phases` fixes one per iteration.
    schedule: list[PHASES] = ["bc"]
    plateau: float = 0.01
    patience: int = Field(1, ge=1)    # iterations without a val gain ≥ plateau that end a phase
    max_iterations: int | None = Field(None, ge=1)
    phases: list[PHASES] | None = None
    save_every: int = Field(50, ge=1)     # trainer checkpoint every N steps (resume point)
    dpo: DPOLearnConfig = DPOLearnConfig()
    grpo: GRPOLearnConfig = GRPOLearnConfig()
    init_from: Literal["base", "previous"] = "previous"
    steps: int = Field(200, ge=1)
    # BC: at most this many passes over an iteration's BC data (fewer steps when D_expert is
    # small: 200 steps on 55 examples wiped a policy's skill out); None: always `steps`
    max_epochs: float | None = Field(None, gt=0)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    bf16: bool | Literal["auto"] = "auto"   # auto: where the hardware has native bf16 (a
                                            # CPU without it runs bf16 10–20× slower)
    gradient_checkpointing: bool = False    # recompute activations: GPU memory for time
    # torch.compile the policy for BC (init and BC iterations). On a 2-CPU bf16 machine a
    # compiled init step measured 0.87–1.47× the eager speed (benchmarks/compile.py; the
    # machine drifts ±20%), after ~65 s of compiling the first time: not shown to pay on CPU
    torch_compile: bool = False
    micro_batch: int | None = Field(None, ge=1)  # BC/DPO examples per forward/backward pass;
                                                 # the rest of a batch accumulates
    replay_init: float = Field(0.0, ge=0, le=1)  # fraction of init (legal-format) data mixed in
    replay_iterations: int = Field(0, ge=0)     # also train on the last K iterations' D_expert
    augment: int = Field(0, ge=0)     # each BC example K more times as a variant
                                      # (env.augment; Countdown: its numbers shuffled)
    threads: Threads = "auto"   # auto: every usable CPU (training has the machine to itself)
    # inprocess: TRL in the flow's process; accelerate: the stage under `accelerate launch`
    # with this accelerate config (multi-GPU DDP by default; FSDP/DeepSpeed by its file)
    launcher: Literal["inprocess", "accelerate"] = "inprocess"
    accelerate_config: Path = Path("configs/accelerate/multi_gpu.yaml")
    num_processes: int | None = Field(None, ge=1)    # overrides the file's num_processes

    @model_validator(mode="after")
    def _schedule(self):
        if not self.schedule or len(set(self.schedule)) != len(self.schedule):
            raise ValueError("learn.schedule must list each phase once, e.g. [bc, dpo, grpo]")
        return self


class EvalConfig(_Section):
    k: int = Field(8, ge=1)            # pass@k / maj@k from n_samples sampled at temperature
    n_samples: int = Field(8, ge=1)
    temperature: float = Field(1.0, ge=0)
    n_sampled_problems: int = Field(200, ge=1)
    promote_metric: str = "val_pass@1"
    # the promotion gate: McNemar's exact test on per-problem val outcomes, one-sided, at
    # this level (null: promote on any gain in promote_metric)
    promote_alpha: float | None = Field(0.05, gt=0, lt=1)
    # test-time search (accuracy vs generated tokens per method); [] turns it off
    search_methods: list[TEST_TIME_METHODS] = []
    search_budgets: list[int] = [4, 16]
    search_problems: int = Field(200, ge=1)   # first N of the test split
    search_every: int = Field(0, ge=0)        # 0: the last iteration only; K: every K-th too

    @model_validator(mode="after")
    def _budgets(self):
        if any(b < 1 for b in self.search_budgets):
            raise ValueError("eval.search_budgets must all be >= 1")
        return self

    @model_validator(mode="after")
    def _k(self):
        if self.k > self.n_samples:
            raise ValueError("eval.k must be <= eval.n_samples")
        return self


class RewardConfig(_Section):
    # The PRM every search method, selector and the verify stage's step rewards use: the
    # env's exact step labels, Monte-Carlo labels (Math-Shepherd: m rollouts of the current
    # policy per step prefix), or a learned PRM (trained on `prm_labels` by the flywheel, or
    # `prm_model`). Until a run has fitted its first PRM, `learned` uses its label source.
    # `self`: guidance from inside — the policy's own confidence in each step (the mean
    # token log-probability); `mix`: self_weight · self + (1 − self_weight) · `mix_with`.
    prm: Literal["oracle", "mc", "learned", "self", "mix"] = "oracle"
    self_weight: float = Field(0.5, ge=0, le=1)
    mix_with: Literal["oracle", "mc", "learned"] = "learned"
    prm_labels: Literal["oracle", "mc"] = "oracle"
    # pointwise: a token classifier at step ends (one pass per text); pairwise: Bradley–Terry
    # on step prefixes of one problem (RewardTrainer) — it measured worse (reward_pairwise.md)
    prm_loss: Literal["pointwise", "pairwise"] = "pointwise"
    mc_rollouts: int = Field(4, ge=1)
    # Learned verifiers the flywheel fits on D_search after verify, every `train_every`
    # iterations; `prm: learned` implies "prm". Registered in MLflow as <run.name>-prm/-orm.
    train: list[Literal["prm", "orm"]] = []
    train_every: int = Field(1, ge=1)
    steps: int = Field(1500, ge=1)    # held-out PRM AUC grew with steps (benchmarks/reward)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    max_examples: int = Field(50000, ge=1)        # PRM trajectories / ORM pairs per fit
    pairs_per_problem: int = Field(4, ge=1)       # Bradley–Terry pairs per problem (ORM)
                                                  # and per problem and depth (pairwise PRM)
    prm_model: str | None = None    # a trained PRM (path, NAME@alias, NAME/VERSION) to use
    orm_model: str | None = None    # a trained ORM for the orm_bon / orm_weighted selectors
    # shaping weights (shaped = outcome + Σ weight·term); each term is stored in DuckDB
    shaping: dict[Literal["format", "valid_steps", "length"], float] = {
        "format": 0.0, "valid_steps": 0.0, "length": 0.0}

    @model_validator(mode="after")
    def _learned(self):
        if learned_prm(self) and self.prm_model is None and "prm" not in self.train:
            self.train = [*self.train, "prm"]
        return self


def learned_prm(reward: RewardConfig) -> bool:
    """Whether searches consult a learned PRM (alone or in a mix)."""
    return reward.prm == "learned" or (reward.prm == "mix" and reward.mix_with == "learned")


class RunConfig(_Section):
    iterations: int = Field(5, ge=1)
    seed: int = 0
    threads: Threads = "auto"   # per generate shard; auto: usable CPUs / concurrent shards
    name: str = "countdown"            # MLflow registered model / experiment name
    root: Path = Path(".")             # workspace: DuckDB, data/, models/, mlflow.db
    dvc_push: bool = True
    min_free_mb: int = Field(200, ge=0)   # refuse to start with less free disk than this
    # where the generate shards run: threads here, or Ray / Dask (the `scale` extra) — a
    # local instance with `workers` CPUs, or an existing cluster at `runner_address`
    # (ray://head:10001, tcp://scheduler:8786; every node must see the workspace paths)
    runner: Literal["threads", "ray", "dask"] = "threads"
    runner_address: str | None = None
    workers: int | None = Field(None, ge=1)   # local Ray/Dask: CPUs / worker processes


class ServeConfig(_Section):
    """Where `reasonloop serve` and `reasonloop ui` put their servers (never in results)."""
    host: str = "127.0.0.1"
    prefect_port: int = Field(4200, ge=1, le=65535)
    mlflow_port: int = Field(5000, ge=1, le=65535)
    cron: str = "0 3 * * *"            # `reasonloop serve` without --cron / --interval
    iterations: int = Field(1, ge=1)   # flywheel iterations per scheduled run
    start_timeout_s: float = Field(90, gt=0)


class RetentionConfig(_Section):
    """What the end of each scheduled turn deletes (`reasonloop gc`; never results)."""
    keep_last: int | None = Field(None, ge=1)   # None: keep everything


class Config(_Section):
    env: EnvConfig = EnvConfig()
    policy: PolicyConfig = PolicyConfig()
    search: SearchConfig = SearchConfig()
    filter: FilterConfig = FilterConfig()
    learn: LearnConfig = LearnConfig()
    eval: EvalConfig = EvalConfig()
    reward: RewardConfig = RewardConfig()
    run: RunConfig = RunConfig()
    serve: ServeConfig = ServeConfig()
    retention: RetentionConfig = RetentionConfig()

    @model_validator(mode="after")
    def _orm_methods(self):
        """Test-time selectors scored by a learned ORM need one fitted or given."""
        orm = [m for m in self.eval.search_methods if "orm" in m]
        if orm and "orm" not in self.reward.train and self.reward.orm_model is None:
            raise ValueError(f"eval.search_methods {orm} need a learned ORM: add orm to "
                             "reward.train or set reward.orm_model")
        return self

    @model_validator(mode="after")
    def _one_starting_policy(self):
        if self.policy.path is not None and self.policy.init_from is not None:
            raise ValueError("policy.path (used as is) and policy.init_from (BC'd further on "
                             "policy.init_data) both name the starting policy: set one")
        return self

    @model_validator(mode="after")
    def _real_path(self):
        if self.env.name == "math" and self.policy.path is None:
            raise ValueError("env 'math' needs policy.path (a local HF causal LM directory)")
        if self.env.name == "math" and self.env.problems_file is None:
            raise ValueError("env 'math' needs env.problems_file (JSONL of question/answer)")
        if self.env.answer_check is not None and self.env.name != "math":
            raise ValueError("env.answer_check is read by env 'math' only (a plugin env "
                             "judges answers in its own verify)")
        if self.env.name == "countdown" and self.env.problems_file is not None:
            raise ValueError("env.problems_file is read by env 'math' only: Countdown problems "
                             "are generated (evaluate a file with `reasonloop eval --problems`)")
        return self

    def hash(self) -> str:
        """Stable over what changes results (not the workspace root or iteration count)."""
        d = self.model_dump(mode="json")
        d["run"].pop("root", None)
        for k in ("min_free_mb", "runner", "runner_address", "workers"):   # not results
            d["run"].pop(k, None)
        d["run"].pop("iterations", None)
        d.pop("serve", None)
        d.pop("retention", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


def _set_dotted(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    cur = d
    for k in keys[:-1]:
        cur = cur.setdefault(k, {})
        if not isinstance(cur, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a section")
    cur[keys[-1]] = value


def error_line(e: ValidationError, prefix: str = "") -> str:
    """pydantic's first error as one line: `where: what (got value)`."""
    err = e.errors()[0]
    where = prefix + ".".join(str(x) for x in err["loc"]) or "config"
    return f"{where}: {err['msg']} (got {err.get('input')!r})"


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """YAML recipe → Config; `overrides` are `a.b=value` strings (YAML-parsed values)."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({e.__class__.__name__})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping at top level")
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, val = item.split("=", 1)
        _set_dotted(raw, key.strip(), yaml.safe_load(val))
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError((f"{path}: " if path else "") + error_line(e)) from None
    plugins.validate(cfg.env, from_scratch=cfg.policy.path is None,   # imports a plugin env
                     augment=cfg.learn.augment > 0, init_data=cfg.policy.init_data)
    return cfg
