"""The run directory: the contract between the login side and the job (stdlib only).

- :mod:`hpcx.rundir.layout`: every file and folder name of a run directory, and the functions that build and
  parse them (no other module spells one);
- :mod:`hpcx.rundir.records`: the record format, its writer and readers;
- :mod:`hpcx.rundir.process`: one record file per process, and where in a run a process's records go;
- :mod:`hpcx.rundir.tasks`: the task table of a sweep (``tasks.jsonl``).
"""
