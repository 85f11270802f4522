"""Help that reads well at 80 columns: three corrections to how typer renders ``--help``.

typer (0.29) prints ``<bool>`` after every flag, although a flag takes no value; writes a required argument as
``{RUN}`` in the usage line, which reads as a set or a template; and keeps the line breaks of a docstring's
later paragraphs, so they break mid-sentence wherever the source wrapped them. Each correction checks that
the typer internal it replaces is still there, and leaves typer as it is otherwise (help is then uglier, never
wrong).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import click
from typer import core, rich_utils

_SINGLE_BREAK = re.compile(r"(?<!\n)\n(?!\n)")


def _flag_shows_no_type(original: Callable[..., str | None]) -> Callable[..., str | None]:
    def display_type_rich(self: core.TyperOption, ctx: click.Context) -> str | None:
        return None if self.is_flag else original(self, ctx)

    return display_type_rich


def _argument_name(self: core.TyperArgument) -> str:
    """The metavar, else the name in capitals (CONNECTION), as the command's own help text writes it."""
    return self.metavar or (self.name or "").upper()


def _usage_name(self: core.TyperArgument) -> str:
    """RUN when required, [RUN] when not, as click and man pages write them."""
    name = _argument_name(self) if self.required else f"[{_argument_name(self)}]"
    return name + ("..." if self.nargs != 1 else "")


def _paragraphs(paragraphs: list[str], markup_mode: rich_utils.MarkupModeStrict) -> str:
    """Later paragraphs with their single line breaks undone (a ``\\b`` paragraph keeps its lines)."""
    joined = (p if p.startswith("\b") else _SINGLE_BREAK.sub(" ", p) for p in paragraphs)
    return "\n\n".join(joined)


def install() -> None:
    """Apply the corrections (idempotent); `regsync`'s root module calls it once at import."""
    if hasattr(core.TyperOption, "display_type_rich") and not getattr(core.TyperOption, "_regsync", False):
        core.TyperOption.display_type_rich = _flag_shows_no_type(core.TyperOption.display_type_rich)  # type: ignore[method-assign]
        core.TyperOption._regsync = True  # type: ignore[attr-defined]
    if hasattr(core.TyperArgument, "_usage_display_name"):
        core.TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
    if hasattr(core.TyperArgument, "display_name_raw"):  # the arguments panel and error hints
        core.TyperArgument.display_name_raw = property(_argument_name)  # type: ignore[assignment,method-assign]
    if hasattr(rich_utils, "_fix_linebreaks"):
        rich_utils._fix_linebreaks = _paragraphs
