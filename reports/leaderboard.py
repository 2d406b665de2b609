"""The report's tables: the leaderboard (one table per stage, the final stage first) and any other table in its
style, each column sortable by a click on its head (the page's script)."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from reports.axes import metric_of
from reports.schema import (
    BEST_METRIC,
    EPOCHS,
    FAILURE,
    FINISHED,
    GPU_HOURS,
    STAGE,
    STATUS,
    TRIAL_ID,
    WALL_TIME_S,
    is_missing,
    is_number,
    param_columns,
    param_name,
    ranked,
    stage_order,
    trial_numbers,
)

TEXT = ' class="text"'  # a cell or head of text: left-aligned


def leaderboard_html(trials: pd.DataFrame, table_id: str) -> str:
    """Every trial, one table per stage (ids `table_id`-K, K the stage's place in the run), the final stage first: its
    best is the study's answer; the stages before it made what it trained on. A stage's trials are ranked by its metric,
    those without a value yet (failed early, running) last, unranked; its hyperparameter columns are those its trials
    set (its constants too)."""
    if not len(trials):
        return "<p>No trials.</p>"
    stages = stage_order(trials)
    boards = [
        _stage_board(
            trials[trials[STAGE] == stage], stage, f"{table_id}-{k}", final=len(stages) > 1 and k == len(stages) - 1
        )
        for k, stage in enumerate(stages)
    ]
    return "".join(reversed(boards))


def _stage_board(rows: pd.DataFrame, stage: str, table_id: str, *, final: bool) -> str:
    params = param_columns(rows)
    metric, mode = metric_of(rows, stage)
    by_value = ranked(rows, stage)  # the finished ones ranked; failed and running trials after them, unranked
    finished = by_value[STATUS].isin(FINISHED)
    rest = pd.concat([by_value[~finished], rows[rows[BEST_METRIC].isna()]]).to_dict("records")
    body = []
    number = dict(zip(rows[TRIAL_ID], trial_numbers(rows), strict=True))  # the history figure's x
    digits = digits_apart(rows[BEST_METRIC])
    for rank, row in [*enumerate(by_value[finished].to_dict("records"), start=1), *((None, r) for r in rest)]:
        cells = [
            cell(rank if rank is not None else "", rank if rank is not None else 1e9),
            cell(row[TRIAL_ID], text=True),
            cell(number[row[TRIAL_ID]]),
            cell(row[STATUS], text=True),
            cell(fmt(row[BEST_METRIC], digits), row[BEST_METRIC]),
            *[cell(fmt(row[c]), row[c], text=not is_number(row[c])) for c in params],
            cell(row[EPOCHS], row[EPOCHS]),
            cell(fmt(row[GPU_HOURS]), row[GPU_HOURS]),
            cell(fmt((row[WALL_TIME_S] or 0) / 60), row[WALL_TIME_S]),
            cell("" if is_missing(row.get(FAILURE)) else row[FAILURE], text=True),  # (NaN where none)
        ]
        body.append(f'<tr class="status-{html.escape(str(row[STATUS]))}">{"".join(cells)}</tr>')
    columns = [
        "rank",
        "trial",
        "#",
        "status",
        metric,
        *[param_name(c) for c in params],
        "epochs",
        "GPU h",
        "wall min",
        "failure",
    ]
    texts = {"trial", "status", "failure", *(param_name(c) for c in params if not rows[c].map(is_number).all())}
    head = "".join(f"<th{TEXT * (c in texts)}>{html.escape(c)}</th>" for c in columns)  # text heads left-aligned
    said = (
        f"Stage <b>{html.escape(stage)}</b>{' (the final stage: its best is the answer)' * final}: {len(rows)} trial{'s' * (len(rows) != 1)}, "
        f"ranked by {html.escape(metric)}, {'highest' if mode == 'max' else 'lowest'} first (of equal ones, the one "
        "trained more epochs, then the lower #: the searcher's trial number); failed and running trials last, unranked"
    )
    return (
        f'<p class="board">{said}</p><div class="scroll"><table class="leaderboard" id="{table_id}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def table_html(frame: pd.DataFrame) -> str:
    """Any table in the leaderboard's style, each column sortable by a click on its head."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(cell(fmt(v), v, text=not is_number(v)) for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<div class='scroll'><table class='leaderboard'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"


def fmt(value: Any, digits: int = 4) -> str:
    """A table's or sentence's number, to 4 (`digits`) significant digits; empty where missing."""
    if is_missing(value):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def digits_apart(values: pd.Series) -> int:
    """The significant digits (4 to 8) that write different values differently: trials 4e-7 apart read as tied at 4,
    and were ranked as if by a tie-break."""
    distinct = set(values.dropna())
    return next((d for d in range(4, 9) if len({f"{v:.{d}g}" for v in distinct}) == len(distinct)), 8)


def cell(shown: Any, sort_value: Any = None, *, text: bool = False) -> str:
    """One table cell showing `shown`, sorted by `sort_value` (else by what it shows); text left-aligned."""
    key = shown if sort_value is None else sort_value
    if is_missing(key):
        key = ""
    return f'<td{TEXT * text} data-value="{html.escape(str(key))}">{html.escape(str(shown))}</td>'
