"""Shell completion for job kinds, partitions and run ids (bash, zsh, fish through click)."""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import CompletionItem

from hpcx.errors import HpcxError


def _obj(ctx: click.Context) -> Any:
    from hpcx.cli.app import Ctx

    root = ctx.find_root()
    if isinstance(root.obj, Ctx):
        return root.obj
    return Ctx(root.params.get("site_path"), False)


def complete_kind(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from hpcx.templates import list_kinds

    try:
        obj = _obj(ctx)
        kinds = list_kinds([*obj.user.template_dirs, *obj.site.template_dirs])
    except HpcxError:
        return []
    items = [CompletionItem(k) for k in kinds if k.startswith(incomplete)]
    return (
        items + [CompletionItem(incomplete, type="file")] if "/" in incomplete or "." in incomplete else items
    )


def complete_partition(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        names = list(_obj(ctx).site.partitions)
    except HpcxError:
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_run(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from hpcx.runs import list_runs

    try:
        root = _obj(ctx).runs_root.path
    except HpcxError:
        return []
    return [CompletionItem(r.id) for r in list_runs(root)[-200:] if r.id.startswith(incomplete)]
