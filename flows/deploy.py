"""Deployment, kept apart from the loop: a nightly flywheel on a cron schedule.

Schedules need a real Prefect server (`prefect server start`); the temporary server that
`reasonloop run` uses cannot schedule. `prefect.yaml` declares the same deployment for
`prefect deploy --all` + a process worker."""

from __future__ import annotations

from prefect import flow

from reasonloop.config import load_config


@flow(name="nightly-flywheel")
def nightly(config_path: str = "configs/default.yaml", iterations: int | None = None,
            overrides: list[str] | None = None) -> list[dict]:
    import time

    from flows.flywheel import run
    extra = list(overrides or []) + ([f"run.iterations={iterations}"] if iterations else [])
    cfg = load_config(config_path, extra)
    return run(cfg, f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.hash()[:6]}")


def serve_flywheel(config_path: str, cron: str, iterations: int | None = None) -> None:
    load_config(config_path)  # fail fast on a bad config, before serving
    nightly.serve(name="nightly", cron=cron,
                  parameters={"config_path": config_path, "iterations": iterations})


if __name__ == "__main__":
    serve_flywheel("configs/default.yaml", "0 2 * * *")
