"""Imports flow one way: no circle among advland's modules, and none hidden inside a function.

The graph is read from the source with ``ast`` (every ``import``/``from ... import`` naming an advland
module, at any depth), so a circle dodged by a function-level import is still a circle here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import advland

ROOT = Path(advland.__file__).parent
OPTIONAL_EXTRAS = {"ray", "torch.utils.tensorboard"}
"""Third-party packages imported where they are used, because advland runs without them."""
DEFERRED_DEPENDENCIES = {"mnist1d.data", "mnist1d.utils", "typer._click.exceptions", "click"}
"""Third-party dependencies imported where used: mnist1d's generator (a second of matplotlib imports, needed
only when its cached data set is missing), and click's exception class (found at one of two places
depending on typer's version)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The advland modules an import statement loads (``from pkg import sub`` names the submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in MODULES]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES]
    return found or ([source] if source in MODULES else [])


def graph() -> tuple[dict[str, set[str]], list[str]]:
    """advland's import graph, and every import inside a function or class (as ``module:line name``)."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    nested = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            edges[module] |= set(targets(module, path, node))
            name = node.module if isinstance(node, ast.ImportFrom) and not node.level else None
            name = name or (node.names[0].name if isinstance(node, ast.Import) else f"{'.' * node.level}{node.module}")
            if id(node) not in top and name not in OPTIONAL_EXTRAS | DEFERRED_DEPENDENCIES:
                nested.append(f"{module}:{node.lineno} {name}")
    return edges, nested


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), plus self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges[v]:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert cycles(graph()[0]) == []


def test_the_check_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_inside_a_function():
    assert graph()[1] == []


LAYERS = [
    ["errors", "jsonio", "seeds", "stats", "binomial", "schedules", "augment", "perturb", "ema", "modes", "version",
     "provenance"],
    ["threat", "radius", "attacks", "conventions", "objectives", "accel", "distributed", "divergence", "optim"],
    ["recipes", "config", "resume"],
    ["data", "models", "build", "run", "ensemble", "meter", "strategy", "load"],
    ["evaluate", "sanity", "landscape", "plots"],
    ["callbacks", "checkpoint", "train"],
    ["analyses", "evaluation_run", "compare", "export", "catalog", "sweep", "report", "reproduce"],
    ["cli", "cli_flags", "__main__"],
]
"""The layers of the README's "where things live" map, lowest first: a module imports only from its own
layer and the ones below (the package's ``__init__`` re-exports from all of them)."""


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next((i for i, names in enumerate(LAYERS) if top in names), len(LAYERS))


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "advland" and layer(m) == len(LAYERS)] == []


def test_no_module_imports_from_a_higher_layer():
    edges = graph()[0]
    upward = [(m, t) for m in MODULES if m != "advland" for t in edges[m] if layer(t) > layer(m)]
    assert upward == []


def test_the_readme_map_names_every_module():
    readme = (ROOT.parents[1] / "README.md").read_text()
    section = readme.split("## Architecture")[1].split("\n## ")[0]
    named = {part.split("/")[0].removesuffix(".py") for part in section.split("`") if part.endswith((".py", "/"))}
    assert {n for names in LAYERS for n in names} <= named
