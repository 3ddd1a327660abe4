"""math-verify under a real timeout in every thread.

math-verify bounds its own parse/compare time with SIGALRM, which only exists on the main
thread; Prefect runs tasks (and TRL calls GRPO rewards) in worker threads, where its timeouts
are off and an answer like `\\boxed{10^{10^{10}}}` from a real model computes for hours. Off
the main thread every judgement therefore goes to one helper process (on *its* main thread,
with math-verify's own timeouts), and the caller waits at most `limit` seconds: past that the
helper is killed and restarted, and the answer counts as wrong. Model text is only parsed as
LaTeX here, never evaluated as Python.
"""

from __future__ import annotations

import atexit
import json
import select
import subprocess
import sys
import threading

TIMEOUT_S = 5          # math-verify's own parse / compare timeouts, each
LIMIT_S = 3 * TIMEOUT_S + 5   # the caller's hard limit for one judgement (parse×2 + verify)


def judge(gold_latex: str, completion: str, timeout: int | None = TIMEOUT_S
          ) -> tuple[bool, str | None]:
    """(correct, extracted answer or None), computed here with math-verify's timeouts (SIGALRM:
    main thread only; `timeout=None` runs unbounded)."""
    from math_verify import LatexExtractionConfig, parse, verify
    cfg = [LatexExtractionConfig()]
    gold = parse(gold_latex, extraction_config=cfg, parsing_timeout=timeout)
    pred = parse(completion, extraction_config=cfg, parsing_timeout=timeout)
    ok = bool(pred) and bool(gold) and verify(gold, pred, timeout_seconds=timeout)
    return bool(ok), (str(pred[-1]) if pred else None)


def _serve() -> None:
    """The helper process: one JSON request per stdin line, one JSON answer per stdout line,
    until stdin closes (its parent exited or killed it)."""
    for line in sys.stdin:
        gold, completion = json.loads(line)
        try:
            answer = judge(gold, completion)
        except Exception:   # noqa: BLE001 — a crash in math-verify/sympy is a wrong answer
            answer = (False, None)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class _Helper:
    """One helper process, started on first use and restarted after a timeout."""

    def __init__(self):
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.timeouts = 0

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reasonloop.envs.math_judge"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1)

    def close(self) -> None:
        with self.lock:
            self._kill()

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdin.close()
            self.proc.stdout.close()
        self.proc = None

    def ask(self, gold: str, completion: str, limit: float) -> tuple[bool, str | None]:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._kill()
                self._start()
            try:
                self.proc.stdin.write(json.dumps([gold, completion]) + "\n")
                self.proc.stdin.flush()
                if select.select([self.proc.stdout], [], [], limit)[0]:
                    ok, answer = json.loads(self.proc.stdout.readline())
                    return bool(ok), answer
            except (OSError, ValueError):    # the helper died under us: a wrong answer
                pass
            self.timeouts += 1
            self._kill()
            return False, None


_helper = _Helper()
atexit.register(_helper.close)
shutdown = _helper.close


def judge_anywhere(gold_latex: str, completion: str, limit: float = LIMIT_S
                   ) -> tuple[bool, str | None]:
    """`judge`, bounded by `limit` seconds on any thread."""
    if threading.current_thread() is threading.main_thread():
        return judge(gold_latex, completion)
    return _helper.ask(gold_latex, completion, limit)


if __name__ == "__main__":
    _serve()
