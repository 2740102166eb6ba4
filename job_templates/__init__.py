"""The job templates that ship with hpcx (installed as the package data ``hpcx.job_templates``)."""
