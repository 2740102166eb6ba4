"""config show, completion."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.site.config import DEFAULT_KEYS, env_defaults, layered, user_config_path

# What applies when no layer sets a value (shown by `config show`; the code paths are in hpcx.submit.submission).
BUILTIN = {
    "kind": "serial", "partition": "chosen per request: the one that fits with the least waste",
    "time": "the partition's default_time, else 00:10:00", "nodes": 1, "ntasks_per_node": 1, "cpus_per_task": 1,
    "gpus_per_node": 0, "mem": "Slurm's DefMemPerCPU", "account": "Slurm's default", "qos": "Slurm's default",
}  # fmt: skip


@cli.group()
def config() -> None:
    """Inspect the configuration layers."""


@config.command("show")
@pass_ctx
def config_show(obj: Ctx) -> None:
    """Every resolved value with its source: cli > env (HPCX_*) > user config > site > builtin; then the
    template directories in search order. The first line names the site in use and how it was chosen
    (--site, HPCX_SITE, user config, system-wide file, else the live cluster, else the builtin local site)."""
    from hpcx.templates import search_path  # Jinja: not for `hpcx completion`

    chosen = obj.chosen
    site_value = chosen.path if chosen.origin != "cluster" else chosen.site.source
    root, root_source = obj.runs_root
    values, sources = layered(
        [("env", env_defaults()), ("user", obj.user.defaults), ("site", obj.site.defaults)]
    )
    rows = [
        {"key": "site", "value": site_value or "builtin local site", "source": chosen.origin,
         "note": chosen.describe()},
        {"key": "user_config", "value": str(obj.user.path or user_config_path()),
         "source": "found" if obj.user.path else "absent"},
        {"key": "runs_root", "value": str(root), "source": root_source},
        {"key": "default_partition", "value": obj.site.default_partition, "source": "site"},
    ]  # fmt: skip
    rows += [
        {"key": k, "value": values.get(k, BUILTIN[k]), "source": sources.get(k, "default")}
        for k in DEFAULT_KEYS
    ]
    # Where job templates are searched, in order; only site and builtin ones may change the site's locked blocks.
    rows += [{"key": "template_dir", "value": str(d), "source": layer}
             for d, layer in search_path(obj.site.template_dirs, obj.user.template_dirs)]  # fmt: skip
    obj.emit("config", {"values": rows}, lambda d: "\n".join([chosen.describe(), *(
        f"{r['key']:<18} {str(r['value']):<48} ({r['source']})" for r in d["values"])]))  # fmt: skip


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL: eval "$(hpcx completion bash)" in ~/.bashrc."""
    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    click.echo(cls(cli, {}, "hpcx", "_HPCX_COMPLETE").source())
