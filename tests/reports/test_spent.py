"""The compute line: epochs run, and which of ASHA, the time budget and failures account for the rest."""

from __future__ import annotations

import pandas as pd

from reports import spent
from tests.reports.study_files import trial_row


def table(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_epochs_not_run_are_counted_apart_by_who_stopped_them() -> None:
    trials = table(
        trial_row("a", 0.2, epochs=4, max_epochs=4),
        trial_row("b", 0.2, status="stopped", epochs=1, max_epochs=4),
        trial_row("c", 0.2, status="cut", epochs=2, max_epochs=4),
        trial_row("d", status="cut", epochs=0, max_epochs=4),  # the deadline came before its first epoch
        trial_row("e", status="failed", epochs=None, max_epochs=4),
        trial_row("f", 0.9, stage="other", status="stopped", epochs=1, max_epochs=4),
    )
    assert spent.epochs_not_run(trials, "train") == {"stopped": 3, "cut": 6, "failed": 4}
    assert spent.epochs_not_run(pd.DataFrame(), "train") == {}


def test_the_compute_line_says_what_asha_saved_apart_from_what_the_time_budget_cut() -> None:
    trials = table(
        trial_row("a", 0.2, epochs=10, max_epochs=10),
        trial_row("b", 0.2, status="stopped", epochs=2, max_epochs=10),
        trial_row("c", 0.2, status="cut", epochs=4, max_epochs=10),
    )
    assert spent.epochs_spent_text(trials, "train") == (
        "16 epochs run, of the 30 that these 3 trials would have cost at the full budget "
        "(53%; ASHA saved 8, the time budget cut 6)"
    )


def test_the_compute_line_of_one_trial_says_so_in_the_singular() -> None:
    trials = table(trial_row("a", 0.2, epochs=4, max_epochs=4))
    assert spent.epochs_spent_text(trials, "train").startswith("4 epochs run, of the 4 that this trial would have cost")


def test_the_compute_line_of_a_study_without_a_budget_says_only_what_asha_saved() -> None:
    trials = table(trial_row("a", 0.2, epochs=4, max_epochs=4), trial_row("b", 0.2, status="stopped", max_epochs=4))
    assert spent.epochs_spent_text(trials, "train").endswith("(62%; ASHA saved 3)")


def test_the_compute_line_names_what_failed_and_running_trials_left() -> None:
    trials = table(
        trial_row("a", 0.2, status="failed", epochs=1, max_epochs=4),
        trial_row("b", 0.2, status="running", epochs=2, max_epochs=4),
    )
    assert spent.epochs_spent_text(trials, "train").endswith(
        "(38%; ASHA saved 0, failed trials left 3, 2 still to run)"
    )
    assert spent.epochs_spent_text(trials, "other") == ""


def test_the_compute_line_names_the_trials_that_ran_again_after_their_process_ended() -> None:
    rows = [trial_row(t, 0.2, epochs=4, max_epochs=4) | {"restarts": n} for t, n in (("a", 0), ("b", 1), ("c", 2))]
    line = spent.epochs_spent_text(table(*rows), "train")
    assert line.endswith("(100%; ASHA saved 0); 2 trials ran again after their process ended (--retries, or their "
                         "node drained): b, c (2 times)")  # fmt: skip
    assert spent.epochs_spent_text(table(*rows[:2]), "train").endswith(
        "; 1 trial ran again after its process ended (--retries, or its node drained): b"
    )
    assert spent.epochs_spent_text(table(*rows[:1]), "train").endswith("(100%; ASHA saved 0)")
    old = [{k: v for k, v in row.items() if k != "restarts"} for row in rows]  # results from before the column
    assert spent.epochs_spent_text(table(*old), "train").endswith("(100%; ASHA saved 0)")
    mixed = spent.epochs_spent_text(table(old[0], *rows[1:]), "train")  # a study resumed after an upgrade
    assert mixed.endswith(": b, c (2 times); those from before segtune counted them are not known"), mixed
