"""The package's shape: no import circles, entry points above the library, training without
matplotlib, one owner for the on-disk layout, a docstring on every file."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kd_ls"
# File names only layout.py may spell out (the run and study folder layout).
LAYOUT_NAMES = ("last.ckpt", "run.json", "metrics.json", "provenance.json", "study.json", "results.csv",
                "primary_history.json",
                "verdict.json", "verdict.md", "study_run.yaml", "test_outputs.pt", "features.pt")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """kd_ls modules a file imports (at any depth: lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kd_ls")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kd_ls"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        # `from kd_ls.x import y` names module kd_ls.x.y when it exists, else kd_ls.x; importing
        # a module also runs every parent package's __init__.
        found = {m for m in imports_of(path) if m in files}
        parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 1)}
        graph[name] = {m for m in found | parents if m in files and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # A package's __init__ importing its own submodules is how packages export names.
            if node == nxt.rsplit(".", 1)[0]:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_in_the_package():
    assert find_cycle(import_graph()) is None


def test_the_library_never_imports_the_commands():
    graph = import_graph()
    offenders = {m: sorted(d for d in deps if d.startswith("kd_ls.commands"))
                 for m, deps in graph.items() if not m.startswith("kd_ls.commands")}
    assert {m: d for m, d in offenders.items() if d} == {}


# The rooms from the bottom up: a module may import its own room and rooms below it, never above.
# (kd_ls.commands sits on top; the foundations, layout, io, records, data, models, losses, metrics,
# are below all of these.)
ROOMS = ("kd_ls.verdict", "kd_ls.plots", "kd_ls.analysis", "kd_ls.report", "kd_ls.study", "kd_ls.commands")


def room_of(module: str) -> int | None:
    """The floor of a module's room in ROOMS (None: a foundation module, below them all)."""
    return next((i for i, room in enumerate(ROOMS) if module == room or module.startswith(room + ".")), None)


def test_no_import_climbs_back_up():
    graph = import_graph()
    climbs = sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                    if room_of(d) is not None and (room_of(m) is None or room_of(d) > room_of(m)))
    assert climbs == []


def test_deciding_is_pure_statistics():
    """kd_ls.verdict imports nothing of kd-ls outside itself: its input is plain rows."""
    graph = import_graph()
    outside = {m: sorted(d for d in deps if d != "kd_ls" and not d.startswith("kd_ls.verdict"))
               for m, deps in graph.items() if m.startswith("kd_ls.verdict")}
    assert {m: d for m, d in outside.items() if d} == {}
    for path in (PACKAGE / "verdict").glob("*.py"):
        text = path.read_text()
        assert "torch" not in text and "matplotlib" not in text, path


def test_metrics_are_pure_tensor_maths():
    for path in (PACKAGE / "metrics").glob("*.py"):
        assert "matplotlib" not in path.read_text(), path


def test_training_path_does_not_import_plotting():
    """No kd-ls module a training run imports draws or imports matplotlib. (Lightning itself
    loads matplotlib through torchmetrics when it is installed; kd-ls adds nothing to that and
    never switches its backend.)"""
    graph = import_graph()
    reached, todo = set(), ["kd_ls.lightning.harness", "kd_ls.study.runner"]  # what a run's process imports
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += graph[module]
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    plotting = sorted(m for m in reached if m.startswith("kd_ls.plots") or "matplotlib" in files[m].read_text())
    assert "kd_ls.lightning.module" in reached and plotting == []


def test_only_layout_spells_out_run_and_study_files():
    offenders = [f"{p.relative_to(PACKAGE)}: {name}" for p in PACKAGE.rglob("*.py") if p.name != "layout.py"
                 for name in LAYOUT_NAMES if f'"{name}"' in p.read_text() or f"'{name}'" in p.read_text()]
    assert offenders == []


def test_every_file_says_its_job():
    missing = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert missing == []


def test_no_module_is_huge():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
