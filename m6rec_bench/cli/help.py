"""How every ``m6bench`` command's help reads, in one place: the click classes every sub-app uses.

Typer 0.29 (with its vendored click 8.2+) has three habits this module undoes for every command,
present and future, rather than patching each help text:

- a bare group (``m6bench``, ``m6bench models``) printed its help and exited 2, an error code for
  asking for help; it exits 0 here;
- every flag, ``--help`` included, was shown with a ``<bool>`` type, which says nothing a flag's
  name does not; flags show no type here;
- every value option showed a ``<str>`` / ``<int range>`` type column and a ``[default: …]`` line,
  which doubled the height of a help screen; a value shows a short metavar (``TEXT``, ``N``,
  ``PATH``, or the choices) and a help text says the default where it matters;
- a docstring's second and later paragraphs kept their source line breaks, so a paragraph wrapped
  at 100 columns in the source broke mid-sentence at 80 columns; paragraphs are joined here (a
  paragraph starting with ``\\b`` keeps its lines, as in click).
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import typer
from typer.core import TyperGroup


def reflow(text: str | None) -> str | None:
    """Join the lines of each paragraph of a help text (``\\b`` paragraphs keep theirs)."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else re.sub(r"\s*\n\s*", " ", p) for p in paragraphs)


def tidy(command: Any, ctx: Any) -> None:
    """Reflow a command's help, give its options short metavars and no default lines (idempotent)."""
    command.help = reflow(command.help)
    params = list(getattr(command, "params", []))
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        params.append(help_option)
    for param in params:
        if getattr(param, "metavar", None) is None:
            if getattr(param, "is_flag", False):
                param.metavar = ""  # a flag's name says it all; "<bool>" is noise
            elif hasattr(param, "display_type"):
                shown = param.display_type(ctx)  # "<int range>", "<list[str]>", "<table|json|csv>"…
                short = _METAVARS.get(shown.strip("<>").removeprefix("list[").rstrip("]").split(" ")[0])
                if short is not None:
                    param.metavar = short
        if hasattr(param, "show_default"):
            param.show_default = False


#: Short metavars by typer's type label (choices keep their ``<a|b|c>``).
_METAVARS = {"str": "TEXT", "int": "N", "float": "X", "path": "PATH", "Path": "PATH"}


class Group(TyperGroup):
    """The class of every ``m6bench`` group: tidy help for itself and each sub-command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            text = ctx.get_help()  # rich help prints itself and returns ""
            if text:
                typer.echo(text)
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def get_help(self, ctx: Any) -> str:
        tidy(self, ctx)
        return super().get_help(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            tidy(command, ctx)
        return command


__all__ = ["Group", "reflow", "tidy"]
