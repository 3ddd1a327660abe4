"""What the real path needs on a GPU, checked on CPU: scorers read whole texts, saving and
scoring dtypes by machine, GRPO's memory knobs, the install hint."""

import pytest
import torch

from reasonloop import compute
from reasonloop.config import LearnConfig
from reasonloop.envs.base import Problem

CPU = compute.Machine("cpu", "AVX2", (), 2)
GPU = compute.Machine("cpu", "AVX2", (), 16, gpu="NVIDIA H200", gpu_bf16=True)
OLD_GPU = compute.Machine("cpu", "AVX2", (), 8, gpu="Tesla T4", gpu_bf16=False)


@pytest.fixture(scope="module")
def long_model(tmp_path_factory):
    """A tiny char-level Llama with 1,024 positions (one token per character)."""
    from reasonloop.policy.init import build_tiny_llama, save_policy
    from reasonloop.policy.tokenizer import build_char_tokenizer
    tok = build_char_tokenizer()
    out = tmp_path_factory.mktemp("long") / "policy"
    return save_policy(build_tiny_llama(tok, 32, 1, 2, seed=0, max_len=1024), tok, out)


PROBLEM = Problem("p", "train", "5 3 2>16\n")
LONG = "".join(f"{i}+1={i + 1} [{i + 1}]\n" for i in range(60))   # 60 steps, 752 chars


def test_a_prm_fits_and_scores_past_512_tokens(long_model, tmp_path):
    from reasonloop.reward.learned import LearnedPRM, train_prm
    assert len(PROBLEM.prompt + LONG) > 600
    labels = [1.0] * 59 + [0.0]
    stats = train_prm(long_model, [(PROBLEM, LONG, labels)] * 2, tmp_path / "prm", steps=1,
                      batch_size=2, lr=1e-3, seed=0, meta={}, bf16=False,
                      max_new_tokens=len(LONG))
    assert stats["cut_examples"] == 0 and stats["max_length"] >= len(PROBLEM.prompt + LONG)
    assert len(LearnedPRM(tmp_path / "prm").many([(PROBLEM, LONG)])[0]) == 60  # the last too
    short = train_prm(long_model, [(PROBLEM, LONG, labels)], tmp_path / "prm2", steps=1,
                      batch_size=1, lr=1e-3, seed=0, meta={}, bf16=False, max_new_tokens=100)
    assert short["cut_examples"] == 1 and short["max_length"] == len("5 3 2>16\n") + 2 + 100


def test_an_orm_reads_the_end_of_a_long_text(long_model, tmp_path):
    from reasonloop.reward.learned import LearnedORM, train_pairwise
    pairs = [{"problem_id": "p", "chosen": LONG, "rejected": LONG[:-3] + "9]\n"}]
    stats = train_pairwise(long_model, pairs, {"p": PROBLEM.prompt}, tmp_path / "orm",
                           steps=1, batch_size=1, lr=1e-3, seed=0, meta={}, bf16=False,
                           max_new_tokens=len(LONG))
    assert stats["cut_examples"] == 0 and stats["max_length"] > 700
    a, b = LearnedORM(tmp_path / "orm").many([(PROBLEM, LONG), (PROBLEM, LONG[:-3] + "9]\n")])
    assert a != b            # they differ only past token 700: a 512 cut scored them equal


def test_dtypes_by_machine():
    assert compute.save_dtype(True, CPU) == torch.float32       # the CPU samples in fp32
    assert compute.save_dtype(True, GPU) == torch.bfloat16      # half the disk, what vLLM loads
    assert compute.save_dtype(False, GPU) == torch.float32
    assert compute.scorer_placement(CPU) == ("cpu", torch.float32)
    assert compute.scorer_placement(GPU) == ("cuda", torch.bfloat16)
    assert compute.scorer_placement(OLD_GPU) == ("cuda", torch.float16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_policy_trained_in_bf16_on_the_gpu_is_saved_in_bf16(long_model, tmp_path):
    import json

    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import load_policy, save_policy
    model, tok = load_policy(long_model)
    ex = [{"prompt": PROBLEM.prompt, "completion": "5+3=8 [2 8]\n"}] * 4
    train_sft(model, tok, ex, tmp_path / "p", steps=1, batch_size=2, lr=1e-3, bf16=True, seed=0)
    save_policy(model, tok, tmp_path / "p")
    assert json.loads((tmp_path / "p" / "config.json").read_text())["dtype"] == "bfloat16"


def test_grpo_micro_batch_must_divide_the_step():
    g = LearnConfig(grpo={"prompts_per_step": 4, "num_generations": 4, "micro_batch": 8}).grpo
    assert g.micro_batch == 8
    with pytest.raises(ValueError, match="micro_batch must divide"):
        LearnConfig(grpo={"prompts_per_step": 4, "num_generations": 4, "micro_batch": 6})


def test_grpo_micro_batches_accumulate_to_one_step(tmp_path):
    """16 sequences per step in micro-batches of 4: the same samples per step, 4 passes."""
    from reasonloop.config import EnvConfig
    from reasonloop.envs.countdown import Countdown
    from reasonloop.learn.grpo import train_grpo
    from reasonloop.policy.init import build_tiny_llama
    from reasonloop.policy.tokenizer import build_char_tokenizer
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, 32, 1, 2, seed=0)
    env = Countdown(EnvConfig(n_train=200))
    problems = [p for p in env.problems() if p.split == "train"][:8]
    g = LearnConfig(grpo={"steps": 2, "prompts_per_step": 4, "num_generations": 4,
                          "micro_batch": 4}).grpo
    stats = train_grpo(model, tok, env, problems, tmp_path / "g", gcfg=g, steps=2, shaping={},
                       max_new_tokens=8, bf16=False, seed=0, save_every=100)
    assert stats["n_sampled"] == 2 * 4 * 4


def test_the_vllm_hint_names_the_build_torch_was_made_for(monkeypatch):
    from reasonloop.policy.engines.vllm import install_hint
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert ".[vllm-gpu]" in install_hint() and "'.[vllm]'" not in install_hint()
    monkeypatch.setattr(torch.version, "cuda", None)
    assert install_hint().startswith("pip install -e '.[vllm]'")


def test_bc_micro_batches_take_the_same_steps(tmp_path):
    """A batch of 8 in micro-batches of 2 (gradient accumulation) learns what one pass of 8
    learns: the same optimizer steps, a quarter of the activations."""
    from reasonloop.config import EnvConfig
    from reasonloop.envs.countdown import Countdown
    from reasonloop.learn.common import batching
    from reasonloop.learn.sft import train_sft
    from reasonloop.policy.init import build_tiny_llama
    from reasonloop.policy.tokenizer import build_char_tokenizer
    assert batching(32, 4) == {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 8}
    assert batching(32) == {"per_device_train_batch_size": 32, "gradient_accumulation_steps": 1}
    from reasonloop.learn.sft import sft_args
    args = sft_args(tmp_path, 3, 8, 1e-3, False, 0, 64, micro_batch=2)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 4)
    tok = build_char_tokenizer()
    ex = Countdown(EnvConfig(n_train=200)).warmup_examples(64, seed=0)
    params = []
    for micro in (None, 2):
        model = build_tiny_llama(tok, 32, 1, 2, seed=0)
        train_sft(model, tok, ex, tmp_path / str(micro), steps=3, batch_size=8, lr=1e-2,
                  bf16=False, seed=0, micro_batch=micro)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(params[0], params[1], atol=1e-5)
    assert not torch.equal(params[0], torch.cat([p.detach().flatten() for p in
                                                 build_tiny_llama(tok, 32, 1, 2, seed=0)
                                                 .parameters()]))
