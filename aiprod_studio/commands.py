"""The command line's plug-in surface: the parser, the options every command takes, the registry.

The core's commands and those of the `engine` and `ui` packages (found through the
`aiprod_studio.commands` entry-point group) each get a `register(reg: Registry)` call and add
their subcommands with a handler: parsed args and settings in, (JSON result, human text) out.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from aiprod_studio.errors import BadInput
from aiprod_studio.settings import Settings

# A handler takes the parsed args and the settings, and returns (JSON result, human text).
Handler = Callable[[argparse.Namespace, Settings], tuple[dict[str, Any], str]]
ENTRY_POINT_GROUP = "aiprod_studio.commands"


class Parser(argparse.ArgumentParser):
    """argparse that reports bad usage through `BadInput` (exit 2, JSON-aware)."""

    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{self.prog}: {message}", field="arguments")


def add_common_options(parser: argparse.ArgumentParser, top: bool = False) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--models-dir", default=default, help="the model vault (env AIPROD_MODELS_DIR; default ./models)"
    )
    parser.add_argument("--data-dir", default=default, help="history, outputs (env AIPROD_DATA_DIR)")
    parser.add_argument("--device", default=default, help="auto, cpu, cuda or cuda:N (env AIPROD_DEVICE; default auto)")
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print one machine-readable JSON object on stdout",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0 if top else argparse.SUPPRESS, help="more logging on stderr"
    )


class Registry:
    """Where command plugins add their subcommands."""

    def __init__(self, subparsers: argparse._SubParsersAction[Parser]):
        self._subparsers = subparsers
        self._groups: dict[str, argparse._SubParsersAction[Parser]] = {}

    def command(self, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
        parser = self._subparsers.add_parser(name, help=help, description=help)
        add_common_options(parser)
        parser.set_defaults(handler=handler)
        return parser

    def group(self, name: str, help: str) -> argparse._SubParsersAction[Parser]:
        if name not in self._groups:
            parser = self._subparsers.add_parser(name, help=help, description=help)
            add_common_options(parser)
            self._groups[name] = parser.add_subparsers(
                dest=f"{name}_command", metavar="COMMAND", required=True, parser_class=Parser
            )
        return self._groups[name]

    def subcommand(self, group: str, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
        parser = self.group(group, "").add_parser(name, help=help, description=help)
        add_common_options(parser)
        parser.set_defaults(handler=handler)
        return parser
