"""How simple the code is to walk: import cycles, project imports inside functions, the
largest modules, fan-in/fan-out, files over 400 lines. Prints a table; the same graph backs
`tests/unit/test_structure.py`.

    python benchmarks/structure.py [REPO_DIR]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("reasonloop", "flows", "tasks")
# Deferred on purpose: heavy or optional dependencies that only some commands use.
OPTIONAL = ("vllm", "ray", "dask", "prefect_ray", "prefect_dask", "selenium")


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for the project's own packages."""
    out = {}
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = f.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = f
    return out


def _targets(node: ast.AST, here: str, is_pkg: bool, known: set[str]) -> list[str]:
    """The project modules an import statement names (resolving `from x import module`)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = here.split(".") if is_pkg else here.split(".")[:-1]
            pkg = pkg[: len(pkg) - node.level + 1]
            base = ".".join([*pkg, base] if base else pkg)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                 for a in node.names]
    out = []
    for n in names:
        while n and n not in known:          # `import a.b.c` → the longest known prefix
            n = n.rpartition(".")[0]
        if n:
            out.append(n)
    return out


def graph(root: Path) -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """(module → project modules it imports at module level, [(module, line, target)] for
    project imports inside functions)."""
    mods = modules(root)
    known = set(mods)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    inner: list[tuple[str, int, str]] = []
    for name, f in mods.items():
        tree = ast.parse(f.read_text(), str(f))
        is_pkg = f.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for t in _targets(node, name, is_pkg, known):
                if t != name:
                    edges[name].add(t)
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        inner += [(name, node.lineno, t)
                                  for t in _targets(node, name, is_pkg, known) if t != name]
    return edges, sorted(set(inner))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), counting every
    import, wherever it stands: an import inside a function hides a cycle, it does not
    remove it. A package importing its own submodules (`__init__` re-exports) is not one."""
    def real(a: str, b: str) -> bool:
        return not b.startswith(a + ".")
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if not real(v, w):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def report(root: Path) -> dict:
    mods = modules(root)
    edges, inner = graph(root)
    fan_in = {m: sum(m in ts for ts in edges.values()) for m in mods}
    lines = {m: len(f.read_text().splitlines()) for m, f in mods.items()}
    biggest = max(lines, key=lines.get)
    hub = max(mods, key=lambda m: len(edges[m]) + fan_in[m])
    return {"modules": len(mods), "cycles": cycles(edges), "inner_imports": inner,
            "largest": (biggest, lines[biggest], len(edges[biggest]), fan_in[biggest]),
            "hub": (hub, lines[hub], len(edges[hub]), fan_in[hub]),
            "over_400": sorted(m for m, n in lines.items() if n > 400)}


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    r = report(root)
    print(f"| measure ({', '.join(PACKAGES)}) | value |\n|---|---|")
    print(f"| modules | {r['modules']} |")
    print(f"| import cycles (modules in them) | {len(r['cycles'])} "
          f"({sum(map(len, r['cycles']))}) |")
    print(f"| project imports inside functions | {len(r['inner_imports'])} |")
    m, n, out, inn = r["largest"]
    print(f"| largest module: lines, fan-out, fan-in | {m}: {n}, {out}, {inn} |")
    m, n, out, inn = r["hub"]
    print(f"| most connected: lines, fan-out, fan-in | {m}: {n}, {out}, {inn} |")
    print(f"| files over 400 lines | {len(r['over_400'])} |")
    for c in r["cycles"]:
        print(f"\ncycle: {' ↔ '.join(c)}")


if __name__ == "__main__":
    main()
