"""How every ``autoflow`` subcommand declares itself: one place for the conventions.

``command`` makes a subcommand whose usage errors (an unknown option too) show that
subcommand's usage, with its help as its description; ``output`` gives a command that prints
data its ``-o/--output`` choice. ``cli.main`` and the modules that register their own
subcommands (``cli.runs``) both use them.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def command(group: Subcommands, name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose usage errors (an unknown option too) show its own usage."""
    p: argparse.ArgumentParser = group.add_parser(name, help=help, description=help, **kwargs)
    p.set_defaults(parser_=p)
    return p


def output(p: argparse.ArgumentParser, *formats: str) -> None:
    """``-o/--output``: the first format is the default."""
    p.add_argument(
        "--output",
        "-o",
        choices=formats,
        default=formats[0],
        help=f"how to print the result (default {formats[0]})",
    )
