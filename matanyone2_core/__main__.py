"""Command line: `python -m matanyone2_core {matte,benchmark} ...`."""

from __future__ import annotations

import argparse
import sys

from . import cli_matte
from .checkpoint import CheckpointError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m matanyone2_core", description="MatAnyone 2 video matting")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_matte.register_cli(sub)
    try:
        from . import benchmark
    except ImportError:
        benchmark = None
    if benchmark is not None and hasattr(benchmark, "register_cli"):
        benchmark.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CheckpointError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
