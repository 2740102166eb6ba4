"""Only hpcx/schedulers/ runs Slurm commands on the login side (DESIGN: Dependency direction; issue 13).

Provenance, sweeps, retries, reruns, discovery and pre-flight ask hpcx.schedulers.slurm, so one module knows
each command's options, timeout, output format and failure. The rule reads the source (the AST) of every
module of the login packages and names, as file:line, each place outside hpcx/schedulers/ that hands a Slurm
argv to hpcx._proc or defines a Slurm argv constant. The compute side (runtime/: scontrol on the node) is not
checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.rules.test_architecture import HPCX, LOGIN

# DESIGN's login side, as the layout rules define it (packages that do not exist yet are checked once they do).
LOGIN_PACKAGES = LOGIN
OWNER = "schedulers"
SLURM_COMMANDS = frozenset(
    {"sbatch", "squeue", "sacct", "scontrol", "sinfo", "sacctmgr", "sshare", "scancel", "srun"}
)
# A tuple of program names only (the launchers a site offers) names programs; it is not an argv.
PROGRAM_NAMES = SLURM_COMMANDS | {"mpirun", "mpiexec", "torchrun"}
RUNS = "runs `{cmd}` through hpcx._proc outside hpcx/schedulers/: ask hpcx.schedulers.slurm"
DEFINES = "defines the Slurm argv constant {name} (`{cmd} ...`) outside hpcx/schedulers/: it belongs there"


def slurm_command(node: ast.AST | None) -> str | None:
    """The Slurm command a list or tuple literal starts with ("sbatch", ...), else None."""
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        first = node.elts[0]
        if isinstance(first, ast.Constant) and first.value in SLURM_COMMANDS:
            return first.value
    return None


def is_argv_constant(node: ast.AST | None) -> bool:
    """A literal that is a command line: a Slurm command with arguments, not only a list of program names."""
    if slurm_command(node) is None or len(node.elts) < 2:
        return False
    return not all(isinstance(e, ast.Constant) and e.value in PROGRAM_NAMES for e in node.elts)


def assigned(body: list[ast.AST]) -> list[tuple[str, ast.AST | None, int]]:
    """(name, value, line) of each plain assignment to a name among the statements in ``body``."""
    out = []
    for stmt in body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            out += [(t.id, stmt.value, stmt.lineno) for t in targets if isinstance(t, ast.Name)]
    return out


def bindings(body: list[ast.AST]) -> dict[str, str | None]:
    """Each name assigned among ``body``'s statements -> the Slurm command of an argv it is bound to, or None
    (a name bound to a Slurm argv anywhere in the scope counts as one)."""
    out: dict[str, str | None] = {}
    for name, value, _ in assigned(body):
        out[name] = out.get(name) or slurm_command(value)
    return out


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def argv_constants(root: Path) -> dict[str, dict[str, str]]:
    """Per module of the tree under ``root``: its module-level names bound to a Slurm argv -> the command."""
    table: dict[str, dict[str, str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        names = {n: slurm_command(v) for n, v, _ in assigned(tree.body) if slurm_command(v)}
        table[module_name(path, root)] = names
    return table


class Finder(ast.NodeVisitor):
    """Finds the Slurm argvs one module hands to hpcx._proc: literally, through a name bound to one (in the
    function, else in the module, else imported), or spread into a list."""

    def __init__(self, tree: ast.Module, constants: dict[str, dict[str, str]]) -> None:
        self.constants = constants
        self.proc_names: set[str] = set()  # the _proc module as this module calls it
        self.proc_functions: set[str] = set()  # functions imported from hpcx._proc
        self.modules: dict[str, str] = {}  # local name -> the hpcx module it stands for
        self.scopes: list[dict[str, str | None]] = [{}]  # innermost last: name -> Slurm command or None
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports(node)
        self.scopes[0].update(bindings(tree.body))
        self.found: list[tuple[int, str]] = []

    def imports(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            local, named = alias.asname or alias.name, bool(alias.asname or isinstance(node, ast.ImportFrom))
            full = f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
            if full == "hpcx._proc":
                self.proc_names.add(local if named else full)
            elif isinstance(node, ast.ImportFrom) and node.module == "hpcx._proc":
                self.proc_functions.add(local)
            elif full in self.constants and named:
                self.modules[local] = full
            elif isinstance(node, ast.ImportFrom) and alias.name in self.constants.get(node.module or "", {}):
                self.scopes[0][local] = self.constants[node.module or ""][alias.name]

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scopes.append(bindings(list(ast.walk(node))))
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        if self.through_proc(node.func):
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                cmd = self.command(arg)
                if cmd:
                    self.found.append((node.lineno, RUNS.format(cmd=cmd)))
        self.generic_visit(node)

    def through_proc(self, func: ast.AST) -> bool:
        if isinstance(func, ast.Name):
            return func.id in self.proc_functions
        return isinstance(func, ast.Attribute) and ast.unparse(func.value) in self.proc_names

    def command(self, arg: ast.AST) -> str | None:
        """The Slurm command ``arg`` runs, if it is a Slurm argv."""
        if isinstance(arg, ast.Name):
            return next((scope[arg.id] for scope in reversed(self.scopes) if arg.id in scope), None)
        if (
            isinstance(arg, ast.Attribute)
            and isinstance(arg.value, ast.Name)
            and arg.value.id in self.modules
        ):
            return self.constants[self.modules[arg.value.id]].get(arg.attr)
        if isinstance(arg, (ast.List, ast.Tuple)) and arg.elts:
            first = arg.elts[0]
            return slurm_command(arg) or (
                self.command(first.value) if isinstance(first, ast.Starred) else None
            )
        return None


def module_violations(path: Path, root: Path, constants: dict[str, dict[str, str]]) -> list[str]:
    """``file:line: rule`` for each place in the module at ``path`` that breaks the rule."""
    tree = ast.parse(path.read_text(), str(path))
    finder = Finder(tree, constants)
    finder.visit(tree)
    found = list(finder.found)
    for name, value, line in assigned(tree.body):
        if is_argv_constant(value):
            found.append((line, DEFINES.format(name=name, cmd=slurm_command(value))))
    rel = path.relative_to(root.parent)
    return [f"{rel}:{line}: {rule}" for line, rule in sorted(found)]


def violations(root: Path = HPCX) -> list[str]:
    """Every place in the login packages under ``root`` (an hpcx/ tree) outside schedulers/ that runs a Slurm
    command itself or defines a Slurm argv constant."""
    constants = argv_constants(root)
    out = []
    for package in LOGIN_PACKAGES:
        if package != OWNER:
            for path in sorted((root / package).rglob("*.py")):
                out += module_violations(path, root, constants)
    return out


def test_only_schedulers_runs_slurm_commands_on_the_login_side():
    found = violations()
    assert found == [], "Slurm commands outside hpcx/schedulers/ on the login side:\n" + "\n".join(found)


SYNTHETIC = """\
import hpcx._proc
from hpcx import _proc
from hpcx import _proc as proc
from hpcx._proc import run
from hpcx.schedulers import slurm
from hpcx.schedulers.slurm import QUEUE_ARGV

SHOW_CONFIG = ("scontrol", "show", "config")
LAUNCHERS = ("srun", "mpirun")


def version():
    return _proc.run(["sbatch", "--version"]).stdout


def config():
    return proc.run(SHOW_CONFIG, timeout_s=5).stdout


def accounting(ids):
    argv = ["sacct", "-P", "-j", ",".join(ids)]
    return run(argv).stdout


def queue():
    return hpcx._proc.run([*slurm.QUEUE_ARGV, "--me"]), _proc.run(QUEUE_ARGV)


def share(user):
    return _proc.run(argv=("sshare", "-u", user), check=False)


def launcher():
    argv = ["srun", "--kill-on-bad-exit=1"]  # rendered into the job script, not run here
    return argv, _proc.run(["git", "status"]), slurm.config()
"""


def test_the_rule_names_file_line_and_rule_for_a_module_that_runs_slurm(tmp_path):
    root = tmp_path / "hpcx"
    (root / "schedulers").mkdir(parents=True)
    (root / "schedulers" / "slurm.py").write_text('QUEUE_ARGV = ("squeue", "-h")\n')
    (root / "schedulers" / "own.py").write_text(SYNTHETIC)  # the owner may do all of it
    (root / "submit").mkdir()
    (root / "submit" / "__init__.py").write_text("")
    (root / "submit" / "bad.py").write_text(SYNTHETIC)

    found = violations(root)

    bad = "hpcx/submit/bad.py"
    assert found == [
        f"{bad}:8: {DEFINES.format(name='SHOW_CONFIG', cmd='scontrol')}",
        f"{bad}:13: {RUNS.format(cmd='sbatch')}",
        f"{bad}:17: {RUNS.format(cmd='scontrol')}",
        f"{bad}:22: {RUNS.format(cmd='sacct')}",
        f"{bad}:26: {RUNS.format(cmd='squeue')}",
        f"{bad}:26: {RUNS.format(cmd='squeue')}",
        f"{bad}:30: {RUNS.format(cmd='sshare')}",
    ]


def test_the_rule_found_what_issue_13_moved(tmp_path):
    """The rule fails on the code as it was: discover's argv constants, provenance's local sacct argv."""
    root = tmp_path / "hpcx"
    (root / "site").mkdir(parents=True)
    (root / "site" / "discover.py").write_text(
        "from hpcx import _proc\n"
        'SINFO_ARGV = ("sinfo", "--json")\n'
        "def read_cluster(timeout_s):\n"
        "    return _proc.run(SINFO_ARGV, timeout_s=timeout_s).stdout\n"
    )
    (root / "runs").mkdir()
    (root / "runs" / "provenance.py").write_text(
        "from hpcx import _proc\n"
        "def accounting(ids):\n"
        '    argv = ["sacct", "-P", "-n", "-j", ",".join(ids)]\n'
        "    return _proc.run(argv, timeout_s=30).stdout\n"
    )

    assert violations(root) == [
        f"hpcx/site/discover.py:2: {DEFINES.format(name='SINFO_ARGV', cmd='sinfo')}",
        f"hpcx/site/discover.py:4: {RUNS.format(cmd='sinfo')}",
        f"hpcx/runs/provenance.py:4: {RUNS.format(cmd='sacct')}",
    ]
