"""reasonloop — a data flywheel for reasoning: search → verify → filter → learn.

The o1 roadmap (arXiv 2412.14135) as software: policy initialization, reward design (ORM/PRM),
search (best-of-N, ...), learning (BC/SFT, DPO, GRPO). This package is the library; it never
imports Prefect — the loop around it lives in `flows/` and `tasks/`.
"""

__version__ = "0.1.0"

import os as _os

# OpenMP threads that wait by sleeping, not spinning: a BC step of a tiny policy ran 25×
# slower with spinning threads while another process (a second run, the test suite) used
# the same cores. Read once, when torch starts its thread pool: set before importing torch.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
