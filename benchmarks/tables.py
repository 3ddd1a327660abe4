"""What every benchmark does last: write its markdown table and show it."""

from __future__ import annotations

from pathlib import Path


def write(out: Path, lines: list[str]) -> None:
    """`lines` to `out` (its folder made), and to the terminal."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")
