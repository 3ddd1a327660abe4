"""reasonloop — a data flywheel for reasoning: search → verify → filter → learn.

The o1 roadmap (arXiv 2412.14135) as software: policy initialization, reward design (ORM/PRM),
search (best-of-N, ...), learning (BC/SFT, DPO, GRPO). This package is the library; it never
imports Prefect — the loop around it lives in `flows/` and `tasks/`.
"""

__version__ = "0.1.0"
