"""From a request to a submitted job: request resolution, pre-flight, own-script parsing, launchers, sweeps, rerun."""
