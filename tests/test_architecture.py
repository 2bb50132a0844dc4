"""The package's shape (ARCHITECTURE.md): imports among ifanp modules form no cycle, counting the imports
inside functions as well as those at the top of a file; they run from the higher layers to the lower ones
only; and no module grows past about 700 lines."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ifanp"
MAX_LINES = 720  # "about 700": a docstring line more does not fail CI, a module twice that long does
#: Modules allowed past MAX_LINES, with the reason (keep this empty unless a split would hurt the reader).
LONG_MODULES: dict[str, str] = {}


#: The layers of ARCHITECTURE.md, bottom (0) to top: a module may import modules of its own layer or below.
#: Keys are module names or package prefixes ("ifanp.plotting" covers ifanp.plotting.*); the longest wins.
LAYERS: dict[str, int] = {
    # 0: settings and pure functions
    "ifanp.config": 0, "ifanp.profiles": 0, "ifanp.data.common": 0, "ifanp.data.masks": 0, "ifanp.losses": 0,
    "ifanp.metrics": 0, "ifanp.gp": 0, "ifanp.models.modules": 0, "ifanp.calibration": 0,
    # 1: data and the model contract
    "ifanp.data": 1, "ifanp.models.base": 1, "ifanp.models.registry": 1,
    # 2: the models
    "ifanp.models": 2, "ifanp.rules": 2, "ifanp.baselines": 2,
    # 3: weights and logs
    "ifanp.pretrained": 3, "ifanp.runlog": 3, "ifanp.options": 3, "ifanp.train1d": 3, "ifanp.onnx_export": 3,
    # 4: training and evaluation
    "ifanp.train": 4, "ifanp.evaluate": 4, "ifanp.export": 4, "ifanp.npf": 4, "ifanp.live": 4,
    # 5: the experiments: the paper's table, the shipped runs, numbers and looks inside the models
    "ifanp.reproduce": 5, "ifanp.recipes": 5, "ifanp.analysis": 5, "ifanp.analysis1d": 5, "ifanp.introspect": 5, "ifanp.timing": 5,
    "ifanp.transfer": 5,
    # 6: tables and text; 7: figures; 8: widgets; 9: the command line
    "ifanp.reporting": 6, "ifanp.reporting_faithful": 6, "ifanp.explanations": 6, "ifanp.plotting": 7, "ifanp.widgets": 8,
    "ifanp.cli": 9, "ifanp.cli_train1d": 9, "ifanp.__main__": 9, "ifanp": 9,
}
#: Known imports against the layers, each with the reason it stays for now.
UPWARD_EXCEPTIONS: dict[tuple[str, str], str] = {}


def layer(name: str) -> int | None:
    """The layer of a module: its own entry or its longest package prefix in LAYERS (None: not placed)."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        key = ".".join(parts[:k])
        if key in LAYERS:
            return LAYERS[key]
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The ifanp modules that ``name`` imports anywhere in its file (top level, functions, TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from . import grid` imports the module ifanp.models.grid; `from .grid import VARIANTS` the
            # module ifanp.models.grid (VARIANTS is a name in it)
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem for a in node.names]
        for t in targets:
            # the longest known module that the target names (ifanp.models.grid.VARIANTS -> ifanp.models.grid)
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported(name, path, known) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_relative_and_function_level_imports(tmp_path):
    graph = import_graph()
    assert "ifanp.models" in graph["ifanp.train"]  # from .models import build
    assert any(m.startswith("ifanp.") for m in graph["ifanp.cli"])


def test_no_import_cycle_among_the_package_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_run_from_higher_layers_to_lower_ones():
    upward = []
    for name, deps in import_graph().items():
        for dep in deps:
            a, b = layer(name), layer(dep)
            if a is not None and b is not None and b > a and (name, dep) not in UPWARD_EXCEPTIONS:
                upward.append(f"{name} (layer {a}) imports {dep} (layer {b})")
    assert not upward, "imports against the layers of ARCHITECTURE.md:\n" + "\n".join(sorted(upward))


def test_every_module_has_a_layer_of_its_own():
    # a package entry ("ifanp.models") places its submodules; a top-level module needs its own entry, so
    # that a new one is placed on purpose (here and in ARCHITECTURE.md), not by the catch-all "ifanp"
    unplaced = [n for n in modules() if n.count(".") == 1 and n not in LAYERS]
    assert not unplaced, f"add {unplaced} to LAYERS (tests/test_architecture.py) and to ARCHITECTURE.md"


def test_no_module_is_much_longer_than_700_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES and name not in LONG_MODULES}
    assert not long, f"modules over {MAX_LINES} lines (split them by idea): {long}"
