"""Switches communication tracing on in an unmodified Python program (``hpcx.profiling.comm.child_env``).

Python imports the first ``sitecustomize`` on its path at start-up; this directory is put first on
PYTHONPATH, so this one runs, then runs the one it shadows (a site's or a virtualenv's), then, when
HPCX_PROFILE_COMM=1, installs tracing. Tracing must never stop the program: any failure is one warning.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _chain() -> None:
    """Run the sitecustomize this file shadows, if there is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


def _install() -> None:
    try:
        from hpcx.profiling.comm import install
    except ImportError:  # an interpreter without hpcx installed: use the tree this hook lives in
        sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        from hpcx.profiling.comm import install
    install()


try:
    _chain()
except Exception as exc:  # a failing sitecustomize must not stop the program (as without us)
    print(f"hpcx: warning: sitecustomize {exc!r}", file=sys.stderr)
if os.environ.get("HPCX_PROFILE_COMM") == "1":
    try:
        _install()
    except Exception as exc:  # tracing is optional; the program is not
        print(f"hpcx: warning: communication tracing is off: {exc!r}", file=sys.stderr)
