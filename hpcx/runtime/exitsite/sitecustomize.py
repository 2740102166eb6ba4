"""Put first on PYTHONPATH by hpcx.run for the command of a torch job (a script that does not import hpcx): at
exit, torch.distributed is torn down and its gloo workers left idle before Python finalises, as
hpcx.runtime.dist.shutdown does for hpcx's own scripts (a gloo worker that frees DDP's last work while the
interpreter finalises aborts the rank: exit 134 after the training finished). It also records which framework
the rank ran (hpcx.profiling.frameworks), for the report."""

import atexit
import importlib.machinery
import importlib.util
import os
import sys


def _run_shadowed() -> None:
    """The sitecustomize this one hides (a site's or a virtualenv's, later on the path): run it as Python would
    have, so putting hpcx's hook first takes nothing away."""
    here = os.path.dirname(os.path.abspath(__file__))
    later = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", later)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


try:
    _run_shadowed()
except Exception as exc:  # as Python does with a failing sitecustomize: say so, go on
    print(f"hpcx: warning: sitecustomize {exc!r}", file=sys.stderr)


def _settle() -> None:
    try:
        from hpcx.profiling.frameworks import record_at_exit

        record_at_exit()  # which framework this rank ran, for the report
    except Exception:
        pass
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return
    try:
        from hpcx.runtime.dist import GLOO_IDLE_LIMIT_S, _wait_for_idle_gloo_threads

        if dist.is_initialized():
            dist.destroy_process_group()
        _wait_for_idle_gloo_threads(GLOO_IDLE_LIMIT_S)
    except Exception:
        pass


atexit.register(_settle)
