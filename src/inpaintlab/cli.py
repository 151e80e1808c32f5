"""Command line: ``inpaintlab models|masks|eval|demo|train|bench|fill|serve|export``.

Thin by design: each subcommand parses its arguments and calls one library function. Every problem the
user can fix is an ``InpaintlabError``, printed as one line (``inpaintlab: error: ...``) with exit code 2.

Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_cmd_<name>(args)``.
"""

from __future__ import annotations

import argparse
import sys

from .errors import InpaintlabError


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and a one-line message (its default is also 2)."""


# ---------------------------------------------------------------------------------------------- models


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list registered generators and discriminators")
    p.add_argument("pattern", nargs="?", default="*", help="glob filter, e.g. 'lgnet*'")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args) -> None:
    from .models import list_discriminators, list_models

    print("generators:")
    for name in list_models(args.pattern):
        print(f"  {name}")
    print("discriminators:")
    for name in list_discriminators(args.pattern):
        print(f"  {name}")


# ----------------------------------------------------------------------------------------------- main

_SUBCOMMANDS = [_add_models]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="inpaintlab", description=__doc__.splitlines()[0])
    from . import __version__

    parser.add_argument("--version", action="version", version=f"inpaintlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except InpaintlabError as err:
        print(f"inpaintlab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inpaintlab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
