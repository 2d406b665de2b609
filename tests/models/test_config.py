"""Model configs as the command line names their fields."""

from __future__ import annotations

from models.config import dotted_values, with_values
from models.registry import model_config


def test_dotted_values_name_nested_fields_as_with_values_takes_them() -> None:
    cfg = with_values(model_config("dual_phase"), {"predictor.hidden": 8, "seg_width": 12})
    values = dotted_values(cfg)
    assert values["predictor.hidden"] == 8 and values["seg_width"] == 12 and "predictor" not in values
    assert with_values(model_config("dual_phase"), values) == cfg  # the round trip
