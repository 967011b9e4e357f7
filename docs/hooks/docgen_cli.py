"""The command-line reference, rendered from the Typer app that ``bastion`` runs.

Every command's usage line, help and options come from the app itself, as ``--help`` shows
them, so this page cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from docgen_table import code, table, text


def render_cli(arg: str) -> str:
    import typer

    from bastion.cli import app  # the public name of the app; a moved module fails the build

    root = typer.main.get_command(app)
    commands = list(_walk(root, _context(root, "bastion", None)))
    overview = table(
        ["command", "what it does"],
        [
            [f"[{code(ctx.command_path)}](#{_anchor(ctx.command_path)})", text(_summary(cmd))]
            for cmd, ctx in commands
            if not _is_group(cmd)
        ],
    )
    sections = [_section(cmd, ctx) for cmd, ctx in commands if ctx.parent is not None]
    return "\n\n".join([overview, *sections])


def _context(cmd: Any, name: str, parent: Any) -> Any:
    # typer ships its own copy of click's Context; make it from the command's own class module
    context_class = cmd.context_class
    return context_class(cmd, info_name=name, parent=parent)


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "list_commands")


def _walk(cmd: Any, ctx: Any) -> Any:
    yield cmd, ctx
    if _is_group(cmd):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            yield from _walk(sub, _context(sub, name, ctx))


def _summary(cmd: Any) -> str:
    help_text = (cmd.help or "").strip()
    first = help_text.split("\n\n")[0]
    return " ".join(first.split())


def _anchor(path: str) -> str:
    return path.replace(" ", "-")


def _section(cmd: Any, ctx: Any) -> str:
    path = ctx.command_path
    depth = "###" if ctx.parent.parent is not None else "##"
    parts = [f"{depth} {code(path)} {{#{_anchor(path)}}}"]
    for paragraph in (cmd.help or "").strip().split("\n\n"):
        if paragraph.strip():
            parts.append(text(paragraph))
    usage = " ".join([path, *cmd.collect_usage_pieces(ctx)])
    parts.append(f"```text\n{usage}\n```")
    if _is_group(cmd):
        names = [n for n in cmd.list_commands(ctx) if not cmd.get_command(ctx, n).hidden]
        parts.append("Commands: " + ", ".join(f"[{n}](#{_anchor(f'{path} {n}')})" for n in names))
    records = [p.get_help_record(ctx) for p in cmd.get_params(ctx) if p.name != "help"]
    rows = [[code(names), text(help_text)] for names, help_text in filter(None, records)]
    if rows:
        parts.append(table(["argument or option", "meaning"], rows))
    return "\n\n".join(parts)
