"""The report's sentence of what a study's last run ran with, from run.json and search.json."""

from __future__ import annotations

from reports import schema
from reports.ran_with import ran_with

RUN = {
    schema.RUN_BUDGET: {"name": "smoke", "samples": 6, "max_epochs": 4, "widths": [4, 8], "epoch_samples": None},
    schema.RUN_RESOURCES: "2 trials at once, each 1 CPUs (1 threads); this machine has 2 CPUs and 0 GPUs",
    schema.RUN_SOFTWARE: {"python": "3.11.9", "torch": "2.13.0", "commit": "abc1234567-dirty"},
    schema.RUN_COMMAND: "python -m tune.search --budget smoke --seed 3",
}


def test_a_run_is_said_with_its_seed_budget_values_resources_versions_and_command() -> None:
    assert ran_with({"seed": 3}, RUN) == (
        "Its last run ran with seed 3; budget smoke (samples 6, max_epochs 4, widths 4/8, epoch_samples None: what the "
        "stages draw on; each stage's own values in its leaderboard); "
        "2 trials at once, each 1 CPUs (1 threads); this machine has 2 CPUs and 0 GPUs; "
        "python 3.11.9, torch 2.13.0, commit abc1234567-dirty; command: python -m tune.search --budget smoke --seed 3."
    )


def test_a_run_recorded_before_the_record_or_from_python_leaves_out_what_it_lacks() -> None:
    assert ran_with({"seed": 0}, {schema.RUN_STAGES: ["main"], schema.RUN_ENDED: True}) == ""  # an older study's
    without = {key: value for key, value in RUN.items() if key != schema.RUN_COMMAND}  # run_search() from Python
    assert ran_with({}, without).startswith("Its last run ran with seed ?; budget smoke (")
    assert "command" not in ran_with({}, without)
