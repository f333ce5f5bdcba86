"""dict → TrainConfig: srpo's own loader against dacite and cattrs, on the mistakes users make in YAML files.

Issue #18 asks for a maintained library instead of the hand-written type coercer in `srpo.config.train`, if it
keeps the error messages as good. This script feeds the same bad config trees to each loader and records whether
it rejects them and with what message. The libraries are not srpo dependencies: install them beside srpo to run
it (`pip install dacite cattrs`); a missing one is reported as such.

    python benchmarks/config_loaders.py        # prints the table, writes results/config_loaders.json
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srpo.config.train import TrainConfig, _from_dict, config_to_dict
from srpo.provenance import provenance

OUT = Path(__file__).parent / "results" / "config_loaders.json"

# (section or None for the root, field, bad value, what a good loader does)
CASES: dict[str, tuple[str | None, str, Any, str]] = {
    "word for a number": ("algo", "lr", "fast", "reject"),
    "1e-5 (YAML 1.1 reads a string)": ("algo", "lr", "1e-5", "accept 1e-05"),
    "word for a bool": ("algo", "dynamic_sampling", "maybe", "reject"),
    "misspelt field": ("algo", "lrr", 1.0, "reject, naming the section and valid fields"),
    "value outside a Literal": (None, "algo_name", "ppo", "reject, naming the choices"),
    "null for a section": ("env", "tabletop", None, "reject"),
    "string for an int": ("algo", "group_size", "8", "reject"),
    "NaN for a float": ("algo", "lr", float("nan"), "reject"),
}


def _first_line(err: BaseException) -> str:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    inner = getattr(err, "exceptions", None)  # cattrs wraps the cause in exception groups
    while inner:
        err = inner[0]
        msg += " | " + (str(err).splitlines()[0] if str(err) else type(err).__name__)
        inner = getattr(err, "exceptions", None)
    return f"{type(err).__name__}: {msg}"[:220]


def loaders() -> dict[str, Callable[[dict[str, Any]], Any] | str]:
    out: dict[str, Callable[[dict[str, Any]], Any] | str] = {"srpo": lambda tree: _from_dict(TrainConfig, tree)}
    try:
        import dacite

        cfg = dacite.Config(strict=True, cast=[tuple])
        out[f"dacite {importlib.metadata.version('dacite')}"] = lambda tree: dacite.from_dict(TrainConfig, tree, cfg)
    except ImportError:
        out["dacite"] = "not installed"
    try:
        import cattrs

        conv = cattrs.Converter(forbid_extra_keys=True)
        out[f"cattrs {importlib.metadata.version('cattrs')}"] = lambda tree: conv.structure(tree, TrainConfig)
    except ImportError:
        out["cattrs"] = "not installed"
    return out


def main() -> None:
    base = config_to_dict(TrainConfig())
    rows: list[dict[str, Any]] = []
    for case, (section, key, value, wanted) in CASES.items():
        tree = copy.deepcopy(base)
        (tree[section] if section else tree)[key] = value
        row: dict[str, Any] = {"case": case, "field": f"{section}.{key}" if section else key, "value": repr(value),
                               "wanted": wanted, "results": {}}
        for name, load in loaders().items():
            if isinstance(load, str):
                row["results"][name] = load
                continue
            try:
                got = load(tree)
                field = getattr(got.algo, key) if section == "algo" else None
                row["results"][name] = f"ACCEPTED (value {field!r})" if field is not None else "ACCEPTED"
            except Exception as err:  # recording what each library raises is the point
                row["results"][name] = _first_line(err)
        rows.append(row)
    for row in rows:
        print(f"\n{row['case']}: {row['field']}={row['value']} (wanted: {row['wanted']})")
        for name, result in row["results"].items():
            print(f"  {name:14s} {result}")
    OUT.write_text(json.dumps({"cases": rows, "provenance": provenance()}, indent=1) + "\n")
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
