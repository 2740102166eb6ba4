-- -*- lua -*-
-- Lmod modulefile for hpcx 0.1.0, the batch toolkit for Slurm/MPI. Installing it: docs/modules.md.
-- Lmod prefers this file to the Tcl one beside it (0.1.0), so one module tree serves Lmod and Environment Modules.

-- ===================== site settings: an admin edits these three lines =====================
local prefix       = "/opt/hpcx"            -- the hpcx installation (venv or pip --prefix): `hpcx` is in <prefix>/bin
local site_file    = "/etc/hpcx/site.yaml"  -- the site file; exported as HPCX_SITE
local template_dir = "/etc/hpcx/templates"  -- the site's job templates; exported as HPCX_TEMPLATE_DIR
-- ============================================================================================

local version = "0.1.0"
local bin = pathJoin(prefix, "bin")

whatis("Name: hpcx")
whatis("Version: " .. version)
whatis("Category: tools, batch, MPI")
whatis("Description: checked Slurm submission, provenance, an MPI/torch runtime, profiling and per-job reports")

help(table.concat({
  "hpcx " .. version .. ": a batch toolkit for Slurm/MPI.",
  "",
  "Describe a job once; hpcx checks it against this site's limits, renders the sbatch",
  "script from the site's templates, submits it and keeps a provenance record.",
  "",
  "  hpcx --help                      all commands",
  "  hpcx render serial -- hostname   the script that would be submitted",
  "  hpcx submit serial -- hostname   submit it",
  "  hpcx status / logs / report      follow and inspect runs",
  "",
  "This module sets:",
  "  PATH               prepends " .. bin,
  "  HPCX_SITE          " .. site_file,
  "  HPCX_TEMPLATE_DIR  " .. template_dir,
  "Unloading restores the values from before loading.",
}, "\n"))

-- One hpcx at a time: loading another version swaps this one out.
family("hpcx")

prepend_path("PATH", bin)
-- pushenv, not setenv: unloading puts back a value the user had set before loading.
pushenv("HPCX_SITE", site_file)
pushenv("HPCX_TEMPLATE_DIR", template_dir)
