"""The house stays easy to live in (issue 21): no import circles in the package, function-level imports
included, and no module past 800 lines."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "inpaintlab"
MAX_LINES = 800


def module_name(path: Path) -> str:
    parts = ("inpaintlab", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere (module level or inside functions)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {c for c in candidates if c in modules and c != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_walk_sees_function_level_imports_and_finds_a_planted_circle():
    graph = import_graph()
    assert "inpaintlab.resolve" in graph["inpaintlab.pipeline"]  # imported inside from_checkpoint
    planted = {**graph, "inpaintlab.errors": graph["inpaintlab.errors"] | {"inpaintlab.cli"}}
    assert find_cycle(planted) is not None


def test_the_package_has_no_import_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle) + " (move the shared piece to a leaf module)"


def test_no_module_passes_800_lines():
    too_long = {}
    for path in SRC.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            too_long[str(path.relative_to(SRC))] = lines
    assert not too_long, (
        f"modules over {MAX_LINES} lines: {too_long}. A module that long holds more than one concept: split it "
        "into modules with one clear home each (DESIGN.md soft budgets; issue 21)"
    )
