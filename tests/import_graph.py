"""The repository's import graph, read from the source, and the two questions asked of it.

Read from the AST rather than by importing, so every import counts wherever it sits: at module
level, inside a function, or under ``if TYPE_CHECKING:``. A circle through a type-only import is
still a circle; the one issue 12 names ran through ``broker/appkeys.py``'s TYPE_CHECKING block.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

FIRST_PARTY = ("broker", "agent_client", "rsb_codec", "rsb_protocol", "rsb_viewer")

Graph = Mapping[str, frozenset[str]]
"""Module -> what it imports: first-party modules by full name, anything else by top-level name
(``aiohttp``, ``asyncio``); those are leaves."""


def module_name(repo: Path, path: Path) -> str:
    parts = list(path.relative_to(repo).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def build(repo: Path, packages: Iterable[str] = FIRST_PARTY) -> dict[str, frozenset[str]]:
    files = {module_name(repo, p): p for pkg in packages for p in (repo / pkg).rglob("*.py")}
    return {name: _imports(name, path, set(files)) for name, path in files.items()}


def _imports(name: str, path: Path, modules: set[str]) -> frozenset[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the submodule; `from mod import name`, the module.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            if target in modules:
                found.add(target)
            elif target.split(".")[0] not in FIRST_PARTY:
                found.add(target.split(".")[0])
    found.discard(name)
    return frozenset(found)


def find_cycle(graph: Graph) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or None if the graph is acyclic."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path = [root]
        on_path = {root}
        stack = [iter(sorted(graph[root]))]
        while stack:
            child = next(stack[-1], None)
            if child is None:  # every import of path[-1] explored: it is on no circle
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if child in on_path:
                return [*path[path.index(child) :], child]
            if child in done or child not in graph:
                continue
            path.append(child)
            on_path.add(child)
            stack.append(iter(sorted(graph[child])))
    return None


def chain_to(graph: Graph, start: str, bad: Callable[[str], bool]) -> list[str] | None:
    """The shortest import chain from ``start`` to a module ``bad`` accepts, or None."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        if module != start and bad(module):
            chain = [module]
            while (parent := came_from[chain[-1]]) is not None:
                chain.append(parent)
            return chain[::-1]
        for child in sorted(graph.get(module, ())):
            if child not in came_from:
                came_from[child] = module
                queue.append(child)
    return None


def under(*prefixes: str) -> Callable[[str], bool]:
    """A predicate: the module is one of ``prefixes`` or inside one of them."""
    return lambda module: any(module == p or module.startswith(p + ".") for p in prefixes)
