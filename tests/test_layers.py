"""Every import inside liquid_jax (those inside functions included) points down the
layers of the architecture, and no modules import each other in a circle.

Layers, lowest first (a module may import its own package and anything below):
errors / parallel / fileio / progress -> models -> data -> encode, export, evals, runs -> train
-> sample -> serve, demo, config_utils -> cli. Packages on one layer, and data's
sub-packages, import each other in one direction only.
"""

import ast
import collections
import pathlib

import liquid_jax

ROOT = pathlib.Path(liquid_jax.__file__).parent
LAYER = {
    "errors": 0, "parallel": 0, "fileio": 0, "progress": 0,
    "models": 1,
    "data": 2,
    "encode": 3, "export": 3, "evals": 3, "runs": 3,
    "train": 4,
    "sample": 5,
    "serve": 6, "demo": 6, "config_utils": 6,
    "cli": 7, "cli_args": 7,
}  # fmt: skip


def _module(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in ROOT.rglob("*.py")}


def _imports(path: pathlib.Path) -> set[str]:
    """The liquid_jax modules ``path`` imports, anywhere in it."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("liquid_jax")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("liquid_jax"):
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in MODULES else node.module)
    return {m for m in out if m in MODULES}


GRAPH = {m: _imports(p) - {m} for m, p in MODULES.items()}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYER[parts[1]] if len(parts) > 1 else -1  # the package root re-exports only


def test_every_package_has_a_layer():
    assert {m.split(".")[1] for m in MODULES if "." in m} <= set(LAYER)


def test_imports_point_down_the_layers():
    upward = {(m, t) for m, targets in GRAPH.items() for t in targets
              if _layer(m) >= 0 and _layer(t) > _layer(m)}  # fmt: skip
    assert upward == set(), "imports that climb up a layer"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_modules_import_each_other_in_a_circle():
    assert _cycles(GRAPH) == []


def _uncommented_local_imports(path: pathlib.Path) -> list[str]:
    """Imports inside functions with no ``#`` comment on their line or on the line above
    them (an import right under a commented one shares its comment)."""
    lines = path.read_text().splitlines()
    found = []
    for fn in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        explained = set()
        for node in sorted(
            (n for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))),
            key=lambda n: n.lineno,
        ):
            above = node.lineno - 2
            if ("#" in lines[node.lineno - 1] or lines[above].lstrip().startswith("#")
                    or above + 1 in explained):  # fmt: skip
                explained.add(node.end_lineno)
            else:
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    return found


def test_imports_inside_functions_say_why():
    """An import is deferred into a function only to spare a real cost (torch, an
    optional extra, a slow import a command does not need), and a comment says which."""
    assert [f for p in MODULES.values() for f in _uncommented_local_imports(p)] == []


def _package_graph(prefix: str, depth: int) -> dict[str, set[str]]:
    """The import graph between the packages ``depth`` levels deep under ``prefix``."""
    name = lambda m: ".".join(m.split(".")[:depth])  # noqa: E731
    graph = collections.defaultdict(set)
    for m, targets in GRAPH.items():
        for t in targets:
            if m.startswith(prefix) and t.startswith(prefix) and name(m) != name(t):
                graph[name(m)].add(name(t))
    return graph


def test_no_packages_import_each_other_in_a_circle():
    """Packages too: ``runs`` and ``export`` share a layer, but only one may import the
    other; ``data``'s sub-packages (tokenizers, sources, pipeline, shapes) likewise."""
    assert _cycles(_package_graph("liquid_jax.", 2)) == []
    data = _package_graph("liquid_jax.data.", 3)
    assert "liquid_jax.data.tokenizers" in data["liquid_jax.data.pipeline"]
    assert _cycles(data) == []


def test_the_checks_catch_what_they_look_for():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    imports = _imports(MODULES["liquid_jax.train.loop"])
    assert "liquid_jax.progress" in imports and "liquid_jax.fileio" in imports
    assert _layer("liquid_jax.train.loop") > _layer("liquid_jax.models.transformer")
    grouped = collections.Counter(_layer(m) for m in MODULES)
    assert set(grouped) >= {0, 1, 2, 3, 4, 5, 6, 7}
