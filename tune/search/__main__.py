"""`python -m tune.search`: see tune.search.cli."""

from data.files import run_module

run_module("tune.search.cli")  # imported inside: a Ctrl-C amid its imports (Ray, torch: seconds) is one line too
# (Ctrl-C in a stage: its main says how to resume)
