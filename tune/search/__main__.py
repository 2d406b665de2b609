"""`python -m tune.search`: see tune.search.cli."""

from data.files import run_command


def _main() -> int:
    from tune.search.cli import main  # imported here: a Ctrl-C amid its imports (Ray, torch: seconds) is one line too

    return main()


run_command(_main)  # (Ctrl-C in a stage: main says how to resume)
