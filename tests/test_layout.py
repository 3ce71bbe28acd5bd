"""The package's floors (docs/design.md): no module imports from a floor above its own, and
no module-level import cycle. Read from the source with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mtl_jax"

FLOORS = {
    "errors": 1, "types": 1, "parallel": 1,
    "aggregators": 2, "models": 2, "data": 2,
    "surgery": 3,
    "evaluation": 4,
    "config": 5, "training": 5,
    "cli": 6, "deploy": 6, "report": 6, "tuning": 6,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "mtl_jax" else None


def imports_of(path: Path, *, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("mtl_jax")}


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def test_every_top_level_package_has_a_floor():
    tops = {top_package(name) for name in all_modules()} - {None}
    assert tops <= set(FLOORS), f"give these a floor in FLOORS and docs/design.md: {sorted(tops - set(FLOORS))}"


def test_no_module_imports_from_a_floor_above_its_own():
    upward = []
    for name, path in all_modules().items():
        own = top_package(name)
        if own is None:
            continue
        for imported in imports_of(path, module_level_only=False):
            other = top_package(imported)
            if other in FLOORS and FLOORS[other] > FLOORS[own]:
                upward.append(f"{name} -> {imported}")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_module_level_import_cycle():
    modules = all_modules()
    graph = {
        name: {m for m in imports_of(path, module_level_only=True) if m in modules and m != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):  # a package's __init__ importing its own modules is fine
                return trail + [node, nxt]
            if nxt not in state:
                cycle = visit(nxt, trail + [node])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [])
            assert cycle is None, "import cycle: " + " -> ".join(cycle)
