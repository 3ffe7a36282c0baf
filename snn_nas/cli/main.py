"""Entry point of ``snn-nas``.

Every sub-command lives in ``snn_nas/cli/<name>.py`` and defines ``HELP`` (one line),
``DESCRIPTION`` (the ``--help`` text), ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy imports (torch, ray) happen inside ``run`` so that ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from snn_nas.errors import SnnNasError, worker_message

COMMANDS = ("search", "pareto", "retrain", "audit", "supernet", "train", "profile", "models", "space")


def build_parser() -> argparse.ArgumentParser:
    from snn_nas.version import __version__

    parser = argparse.ArgumentParser(
        prog="snn-nas",
        description=(
            "Neural architecture search over spiking MLPs. Search a space with Ray Tune and Optuna, "
            "inspect the Pareto front of accuracy versus synaptic operations, retrain the best."
        ),
        epilog="Run 'snn-nas COMMAND --help' for the options of a command. "
        "Set SNN_NAS_DEBUG=1 to see tracebacks of input errors.",
    )
    parser.add_argument("--version", action="version", version=f"snn-nas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"snn_nas.cli.{name}")
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in ("search", "train", "retrain", "audit", "profile", "supernet"):
        from snn_nas.perf import passive_omp_wait, tune_cpu_allocator

        passive_omp_wait()  # before torch loads: waiting OpenMP threads sleep (see snn_nas/perf.py)
        tune_cpu_allocator()  # a process-wide malloc setting that saves page faults in training
    try:
        return int(args._run(args) or 0)
    except (SnnNasError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        if os.environ.get("SNN_NAS_DEBUG"):
            traceback.print_exc()
        message = str(exc) if not isinstance(exc, OSError) or not exc.filename else f"{exc.strerror}: {exc.filename}"
        message = worker_message(message)
        print(f"snn-nas {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"snn-nas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
