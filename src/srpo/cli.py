"""The `srpo` command line: `srpo score | ...`. Each subcommand is one function; heavy imports stay inside them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _score(args: argparse.Namespace) -> int:
    import numpy as np

    from srpo.config.reward import RewardConfig
    from srpo.scoring import load_batch, make_synthetic_batch, score_batch, summary_table, to_csv

    config = RewardConfig.preset(args.preset, reference_scope=args.group_by)
    if args.batch is None:
        arrays = make_synthetic_batch(seed=args.seed)
        print(
            f"No batch file given: scoring a synthetic batch of {arrays['success'].size} trajectories × "
            f"{arrays['embeddings'].shape[1]}-d embeddings, 10 tasks, groups of 8 (failures placed at known "
            "progress along a start→goal path).",
            file=sys.stderr,
        )
        if args.save_batch:
            np.savez(args.save_batch, **{k: v for k, v in arrays.items() if k != "progress"})
            print(f"wrote {args.save_batch}", file=sys.stderr)
    else:
        arrays = load_batch(args.batch)
    scored = score_batch(arrays, config, binary=args.binary)
    table = to_csv(scored)
    if args.out:
        Path(args.out).write_text(table)
        print(f"wrote {scored.rewards.size} rows to {args.out}", file=sys.stderr)
    elif args.batch is not None:
        sys.stdout.write(table)
    kind = "binary GRPO" if args.binary else f"SRPO ({args.preset} preset, per {args.group_by})"
    print(f"\n{kind} rewards\n{summary_table(scored)}", file=sys.stderr if args.batch and not args.out else sys.stdout)
    if "progress" in arrays and not args.binary:
        from scipy.stats import spearmanr

        fails = ~scored.success
        rho = spearmanr(arrays["progress"][fails], scored.rewards[fails]).statistic
        print(f"Spearman(true progress, reward) over failures: {rho:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srpo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser(
        "score",
        help="SRPO rewards and group advantages for a batch of embeddings (.npz) from any RL stack",
        description=(
            "Reads embeddings (N, D), success (N,), task_ids (N,) and group_ids (N,) from an .npz and writes one "
            "CSV row per trajectory in input order. Without BATCH, scores a synthetic batch and prints a table."
        ),
    )
    score.add_argument("batch", nargs="?", help=".npz with embeddings, success, task_ids, group_ids")
    score.add_argument("--preset", choices=["official", "paper"], default="official")
    score.add_argument("--group-by", choices=["task", "group"], default="task", help="reference set scope")
    score.add_argument("--out", help="CSV output file (default: stdout)")
    score.add_argument("--binary", action="store_true", help="plain 0/1 rewards (GRPO) for comparison")
    score.add_argument("--seed", type=int, default=0, help="seed of the synthetic batch")
    score.add_argument("--save-batch", help="also write the synthetic batch to this .npz")
    score.set_defaults(func=_score)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as err:  # bad input and config errors: one clear line, non-zero exit, no traceback
        print(f"srpo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
