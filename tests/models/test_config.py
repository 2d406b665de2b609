"""Model configs as the command line names their fields."""

from __future__ import annotations

import pytest

from models.config import dotted_values, with_values
from models.registry import model_config


def test_dotted_values_name_nested_fields_as_with_values_takes_them() -> None:
    cfg = with_values(model_config("dual_phase"), {"predictor.hidden": 8, "seg_width": 12})
    values = dotted_values(cfg)
    assert values["predictor.hidden"] == 8 and values["seg_width"] == 12 and "predictor" not in values
    assert with_values(model_config("dual_phase"), values) == cfg  # the round trip


def test_a_dotted_setting_that_names_nothing_says_which() -> None:
    """`--set width.x=3` and `--set predictor.nosuch=3` as a user gave them (they said "int has no field 'x';
    valid: []" and "FramePredictorConfig has no field 'nosuch'")."""
    with pytest.raises(ValueError, match=r"^width\.x: UNetConfig\.width is one setting, not a group$"):
        with_values(model_config("unet"), {"width.x": "3"}, from_text=True)
    with pytest.raises(ValueError, match=r"^predictor\.nosuch: FramePredictorConfig has no field 'nosuch'; valid: \["):
        with_values(model_config("dual_phase"), {"predictor.nosuch": "3"}, from_text=True)
