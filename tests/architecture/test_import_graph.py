"""The package's import graph (every import statement, function-local ones included, read from the AST): no
circles, and no import from a lower layer up to a higher one; method packages do not import each other."""
import ast
from pathlib import Path

import nnunet_ext

ROOT = Path(nnunet_ext.__file__).parent

#: layers from the bottom up; a module may import its own layer and the layers below it
LAYERS = ["", "core", "io", "synthetic", "trainers", "planners", "predictors", "evaluation", "methods",
          "conversion", "cli", "demos"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _graph() -> dict:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py") if "_shims" not in p.parts}
    graph = {}
    for name, path in modules.items():
        targets = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                    )
                found = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in found:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith("nnunet_ext") and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def _layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else ""
    if top not in LAYERS:
        top = ""
    method = parts[2] if top == "methods" and len(parts) > 2 else ""
    return LAYERS.index(top), method


def test_no_import_from_a_lower_layer_up_and_no_method_imports_another():
    wrong = []
    for module, targets in _graph().items():
        (mine, my_method) = _layer(module)
        for target in targets:
            (theirs, their_method) = _layer(target)
            if theirs > mine:
                wrong.append(f"{module} -> {target} ({LAYERS[mine] or 'root'} imports {LAYERS[theirs]})")
            elif my_method and their_method and my_method != their_method:
                wrong.append(f"{module} -> {target} (method {my_method} imports method {their_method})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circles():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
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
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    import sys
    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_the_graph_sees_function_local_imports():
    graph = _graph()
    assert graph  # the package was found
    # nnunet_ext.cli.main imports its commands lazily: a function-local import must still be an edge
    assert "nnunet_ext.trainers.plans_options" in graph["nnunet_ext.cli.main"]
