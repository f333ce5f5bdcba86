"""Imports only point down the layers of docs/architecture.md, and no module imports itself back.

Every module under src/srpo is parsed with `ast` (not imported): module-level imports, imports inside functions
and `if TYPE_CHECKING:` imports all count, because each is a dependency a reader must follow. An import of
`a.b.c` is an edge to `a.b.c` only, not to the packages `a` and `a.b` that Python runs first: a package whose
`__init__` re-exports its children would otherwise form a cycle with every child that imports a sibling.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module may import modules of its own layer or below, never above. The longest matching prefix
# names a module's layer; a new module with no prefix here fails `test_every_module_has_a_layer`.
LAYERS: list[tuple[str, ...]] = [
    # 0 config / types: the typed config tree, records, key constants, the error type, file readers, checkpoint
    # manifests, provenance of results
    ("srpo", "srpo.errors", "srpo.files", "srpo.types", "srpo.config", "srpo.manifest", "srpo.provenance"),
    # 1 algo, reward: pure maths and the public SRPO reward library (no envs, no policies)
    ("srpo.algo", "srpo.reward", "srpo.scoring", "srpo.diversity"),
    # 2 envs, policies: contracts and implementations; data files and videos they read and write
    ("srpo.envs", "srpo.policies", "srpo.demos", "srpo.lerobot", "srpo.video", "srpo.distributed",
     "srpo.distributed.cluster"),
    # 3 rollout: the scheduler and its worker transports (local processes, Ray), the remote encoder, scripted-expert
    # recording
    ("srpo.rollout", "srpo.distributed.ray_rollout", "srpo.distributed.encoder", "srpo.recording"),
    # 4 build / update / run_dir: making the parts, the mini-batch update (single-process and data-parallel),
    # the run directory
    ("srpo.build", "srpo.update", "srpo.run_dir", "srpo.distributed.learner", "srpo.resume", "srpo.watchdog",
     "srpo.interrupt"),
    # 5 evaluate: greedy evaluation, reward-quality evaluation, reports of a run, dataset recording, robustness
    # benchmarks, trajectory diversity
    ("srpo.evaluate", "srpo.reward_eval", "srpo.report", "srpo.record", "srpo.robustness", "srpo.diversity_eval"),
    # 6 the loops
    ("srpo.trainer", "srpo.sft", "srpo.compare", "srpo.offline"),
    # 7 the command line
    ("srpo.cli",),
]


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Dotted module name → file, for every .py file under src/srpo (a package is named by its __init__)."""
    out = {}
    for path in sorted((src / "srpo").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def srpo_imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The srpo modules that module `name` (at `path`) imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # `from srpo.reward import progress` imports the module srpo.reward.progress.
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module → the srpo modules it imports."""
    files = module_files(src)
    return {name: srpo_imports(name, path, set(files)) for name, path in files.items()}


def layer_of(module: str) -> int | None:
    """The layer of `module`: that of the longest prefix in LAYERS (None if no prefix matches)."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for layer, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            # The root package "srpo" names only srpo/__init__.py, or every module would match it and need no layer.
            matches = module == prefix or (prefix != "srpo" and module.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return None if best is None else best[1]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None when the graph is acyclic (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for root in sorted(graph):
        if root in state:
            continue
        path = [root]
        stack = [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """'a (layer i) imports b (layer j > i)' for every import that points up."""
    out = []
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            lm, ld = layer_of(module), layer_of(dep)
            if lm is not None and ld is not None and ld > lm:
                out.append(f"{module} (layer {lm}) imports {dep} (layer {ld})")
    return out


def test_every_module_has_a_layer() -> None:
    missing = [m for m in module_files() if layer_of(m) is None]
    assert not missing, f"add these modules to LAYERS in tests/test_architecture.py: {missing}"


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_only_point_down() -> None:
    up = upward_imports(import_graph())
    assert not up, "imports that point up the layers:\n" + "\n".join(up)


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    # A synthetic two-module package: evaluate imports trainer inside a function (upward, and a cycle with the
    # trainer's import of evaluate), which is the knot this test exists to keep untied.
    pkg = tmp_path / "srpo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "evaluate.py").write_text("def f():\n    from srpo.trainer import Trainer\n    return Trainer\n")
    (pkg / "trainer.py").write_text("from srpo import evaluate\nclass Trainer: ...\n")
    graph = import_graph(tmp_path)
    assert graph["srpo.evaluate"] == {"srpo.trainer"} and graph["srpo.trainer"] == {"srpo.evaluate"}
    assert find_cycle(graph) in (["srpo.evaluate", "srpo.trainer", "srpo.evaluate"],
                                 ["srpo.trainer", "srpo.evaluate", "srpo.trainer"])
    assert upward_imports(graph) == ["srpo.evaluate (layer 5) imports srpo.trainer (layer 6)"]


@pytest.mark.parametrize(("module", "layer"), [("srpo.config.train", 0), ("srpo.reward.encoders.pixel", 1),
                                               ("srpo.distributed.learner", 4), ("srpo.distributed.cluster", 2),
                                               ("srpo", 0), ("srpo.not_yet_placed", None)])
def test_layer_of_takes_the_longest_prefix(module: str, layer: int | None) -> None:
    assert layer_of(module) == layer


def argparse_users(src: Path = SRC) -> list[str]:
    """Modules other than srpo.cli that import argparse (every command's flags belong in the one CLI module)."""
    out = []
    for name, path in module_files(src).items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if name != "srpo.cli" and any(n.split(".")[0] == "argparse" for n in names):
                out.append(name)
                break
    return out


def test_command_line_parsers_live_in_cli_only(tmp_path: Path) -> None:
    assert argparse_users() == [], "move these modules' flags into srpo/cli.py (each onto a typed config)"
    pkg = tmp_path / "srpo"
    pkg.mkdir()
    (pkg / "cli.py").write_text("import argparse\n")
    (pkg / "tool.py").write_text("def main():\n    from argparse import ArgumentParser\n    return ArgumentParser\n")
    assert argparse_users(tmp_path) == ["srpo.tool"]
