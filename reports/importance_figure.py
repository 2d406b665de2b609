"""Optuna's fANOVA importance of each hyperparameter, drawn from a stage's own Optuna study: the one figure of the
report that reads the Optuna journal rather than the results tables (reports/figures.py draws those)."""

from __future__ import annotations

import math

import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.importance import FanovaImportanceEvaluator
from optuna.search_space import intersection_search_space
from optuna.trial import TrialState

from reports.axes import metric_of

TRUSTED_FROM = 10  # finished trials: fewer, and the figure's title says its importances are a hint, not a finding


def importances(trials: pd.DataFrame, stage: str, study: optuna.Study | None) -> go.Figure | None:
    """Optuna's fANOVA importance of each hyperparameter for the stage metric, over the finished trials
    of the stage's own Optuna study (its distributions as sampled; the value Optuna was told: a completed
    trial's last epoch, an ASHA-stopped trial's last rung). Parameters Optuna did not ask in every
    finished trial (conditional ones) are left out, as fANOVA needs one search space.

    Drawn by optuna.visualization.plot_param_importances: the same bar chart we drew by hand, with each
    parameter's distribution in its hover text."""
    if study is None:
        return None
    finished = finished_study(study)
    values = {t.value for t in finished.trials}
    if len(finished.trials) < 3 or len(values) < 2:  # fANOVA needs a spread of scores
        return None
    space = intersection_search_space(finished.trials)
    varying = sorted(p for p in space if len({repr(t.params[p]) for t in finished.trials}) > 1)
    if not varying:
        return None
    metric, _ = metric_of(trials, stage)
    try:
        fig = optuna.visualization.plot_param_importances(
            finished, evaluator=FanovaImportanceEvaluator(seed=0), params=varying, target_name=metric
        )
    except RuntimeError as err:  # scores that no split of the parameters separates: nothing to attribute
        if "zero total variance" in str(err):
            return None
        raise
    except ImportError:  # scikit-learn missing (a dependency: an install that lost it): the rest of the report stands
        return go.Figure().update_layout(
            title=f"Hyperparameter importance for {metric}, stage {stage}: not drawn, Optuna's fANOVA needs "
            "scikit-learn, which is not installed here (pip install scikit-learn)",
            height=120,
        )
    count = len(finished.trials)
    few = f": under {TRUSTED_FROM}, a hint at most" if count < TRUSTED_FROM else ""
    fig.update_layout(
        title=f"Hyperparameter importance for {metric}, stage {stage} (fANOVA over {count} trials{few})",
        xaxis_title="importance",
    )
    return fig


def finished_study(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of a study holding its finished trials, all as COMPLETE.

    Optuna's importance evaluators (and plot_param_importances) read COMPLETE trials only
    (optuna.importance._base._get_filtered_trials; `target` cannot widen that). ASHA's stopped trials
    are PRUNED in the journal, and Optuna gave them their last rung's value when they were told; copied
    as COMPLETE they count, as the stopped trials always did in this figure."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    copy = optuna.create_study(direction=study.direction)
    copy.add_trials(
        [
            optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=t.value)
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if t.value is not None and math.isfinite(t.value)
        ]
    )
    return copy
