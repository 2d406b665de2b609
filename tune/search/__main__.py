"""`python -m tune.search`: see tune.search.cli."""

from data.files import run_command
from tune.search.cli import main

run_command(main)  # (Ctrl-C in a stage: main says how to resume)
