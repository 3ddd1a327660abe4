"""The shape of the code, kept: no import cycles, the project's own imports at the top of
each module, and the layers in order (the library never imports a stage, a flow or Prefect).
The graph comes from `benchmarks/structure.py`, which prints the same numbers as a table."""

from benchmarks.structure import cycles, graph, modules
from tests.conftest import ROOT

# Imports inside functions that are allowed, and why. The CLI defers what each command needs
# (torch, transformers, Prefect, MLflow) so that `reasonloop sql` and `--help` answer in about
# a second instead of fifteen; the vLLM engine is an optional extra.
DEFERRED = {
    "reasonloop.cli": {"reasonloop.policy.init", "reasonloop.workspace", "reasonloop.compute",
                       "flows.flywheel", "flows.evaluate", "reasonloop.store.db",
                       "reasonloop.store.registry", "reasonloop.stages.evaluate",
                       "reasonloop.search.methods", "reasonloop.reward.prm"},
    "reasonloop.cli_models": {"reasonloop.store.registry", "reasonloop.store.data",
                              "reasonloop.store.db"},
    "reasonloop.cli_ops": {"flows.deploy", "reasonloop.workspace", "reasonloop.stages.register"},
    "reasonloop.cli_verify": {"reasonloop.workspace", "reasonloop.store.db"},
    "reasonloop.cli_gc": {"reasonloop.retention", "reasonloop.workspace"},
    "reasonloop.policy.engines": {"reasonloop.policy.engines.vllm"},
}


def test_no_import_cycles():
    assert cycles(graph(ROOT)[0]) == []


def test_a_cycle_is_found_even_behind_a_function_level_import():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "p": {"p.x"}, "p.x": {"p"}}
    assert cycles(edges) == [["a", "b", "c"]]       # a package's own submodules do not count


def test_project_imports_stand_at_the_top():
    inner = graph(ROOT)[1]
    new = [f"{m}:{line} imports {t}" for m, line, t in inner if t not in DEFERRED.get(m, ())]
    assert not new, "move these imports to the top of the module (or say why not, here):\n" + \
        "\n".join(new)


def test_layers():
    """The library stands below the stages, the stages below tasks and flows; only the CLI
    and the tasks/flows reach up."""
    edges = graph(ROOT)[0]
    library = [m for m in modules(ROOT) if m.startswith("reasonloop.")
               and not m.startswith(("reasonloop.stages", "reasonloop.cli"))]
    for m in library:
        up = {t for t in edges[m] if t.startswith(("reasonloop.stages", "flows", "tasks",
                                                   "reasonloop.cli"))}
        assert not up, f"{m} imports {up}"
    for f in (ROOT / "reasonloop").rglob("*.py"):
        assert "import prefect" not in f.read_text() and "from prefect" not in \
            f.read_text(), f"{f} imports Prefect: the library stays Prefect-free"


def test_the_workspace_and_gc_load_no_model_library():
    """`reasonloop gc`, `eval`'s argument checks and `run --resume`'s stand on the workspace
    module: importing transformers there cost them ~5 s each before they did anything."""
    import subprocess
    import sys
    code = ("import sys, reasonloop.workspace, reasonloop.retention, reasonloop.cli_gc; "
            "print(sorted(m for m in ('transformers', 'trl', 'vllm', 'prefect') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr[-2000:]
