"""Inside a trial: ``trial = hpcx.tune.trial()`` gives its parameters, ``trial.report(step, value)`` logs the
objective (through ``hpcx.runtime.log``, tagged with the trial), ``trial.should_stop()`` says whether the study's
stopping rule ended it (its worker decided at a rung; the trial then saves what it wants and returns).

The worker that runs the trial (hpcx.tune.worker) sets ``HPCX_TUNE_STUDY`` and ``HPCX_TUNE_TRIAL``; the parameters
come from the trial's own file, so a script reads exactly what the sampler proposed, types included.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcx.errors import RuntimeFailure
from hpcx.fsutil import read_json
from hpcx.rundir.layout import STUDY_FILE, trial_file

LOOK_EVERY_S = 1.0  # should_stop() stats the trial's end file at most this often


@dataclass
class Trial:
    number: int
    params: dict[str, Any]
    seed: int
    study_dir: Path
    objectives: tuple[str, ...]
    _next_look: float = 0.0
    _stopped: bool = False
    _values: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    def report(self, step: int, value: float | None = None, **values: float) -> None:
        """Log the objective at ``step``: ``report(step, 0.31)`` for a study with one objective, or by name,
        ``report(step, val_loss=0.31, latency_ms=12)``; other metrics may ride along."""
        from hpcx.runtime import log

        if value is not None:
            if len(self.objectives) != 1:
                raise RuntimeFailure(
                    f"report(step, {value!r}) is ambiguous: this study has {len(self.objectives)} objectives",
                    hint="name each: " + ", ".join(f"{m}=..." for m in self.objectives),
                )
            values = {self.objectives[0]: value, **values}
        self._values.update(values)
        log(step, None, **values)

    def should_stop(self) -> bool:
        """Whether the stopping rule stopped this trial (its end file says so); one stat at most once a second."""
        if self._stopped:
            return True
        now = time.monotonic()
        if now < self._next_look:
            return False
        self._next_look = now + LOOK_EVERY_S
        self._stopped = trial_file(self.study_dir, self.number, part="end").exists()
        return self._stopped


def trial() -> Trial:
    """The running trial (from $HPCX_TUNE_STUDY and $HPCX_TUNE_TRIAL, which hpcx tune's workers set)."""
    study, number = os.environ.get("HPCX_TUNE_STUDY"), os.environ.get("HPCX_TUNE_TRIAL", "")
    if not study or not number.isdigit():
        raise RuntimeFailure(
            "hpcx.tune.trial() is called outside a tuning study ($HPCX_TUNE_STUDY and $HPCX_TUNE_TRIAL are not set)",
            hint="run the script through `hpcx tune SPEC.yaml`",
        )
    doc = read_json(trial_file(study, int(number)))
    spec = read_json(Path(study) / STUDY_FILE)["spec"]
    objectives = spec.get("objectives") or []
    return Trial(
        int(number),
        dict(doc.get("params") or {}),
        int(os.environ.get("HPCX_TUNE_SEED") or 0),
        Path(study),
        tuple(o["metric"] for o in objectives),
    )
