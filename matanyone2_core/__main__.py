"""Command line: `python -m matanyone2_core {matte,benchmark,validate-evaluator,train-evaluator} ...`."""

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
    from .quality import validate

    validate.register_cli(sub)
    from .quality.mqe import train as train_mqe

    train_mqe.register_cli(sub)
    from .train import cli as train_matting_cli

    train_matting_cli.register_cli(sub)
    from . import curation

    curation.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; exit codes: 0 done, 2 an error (one line "error: ...", no traceback), 130 Ctrl-C."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CheckpointError, ValueError, OSError, RuntimeError) as exc:  # OSError covers FileNotFoundError
        # one line: a multi-line message (torch's, say) is joined, the text itself is left as it is
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return cli_matte.EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return cli_matte.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
