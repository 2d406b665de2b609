from __future__ import annotations

import pytest

from data.classes import NUM_CLASSES, class_id, class_names, class_palette, object_class


@pytest.mark.parametrize(
    ("shape", "material", "color", "expected"),
    [
        ("cube", "metal", "gray", 1),
        ("cube", "metal", "yellow", 8),
        ("cube", "rubber", "gray", 9),
        ("sphere", "metal", "gray", 17),
        ("sphere", "rubber", "yellow", 32),
        ("cylinder", "metal", "gray", 33),
        ("cylinder", "rubber", "yellow", 48),
    ],
)
def test_class_id_follows_the_competition_formula(shape: str, material: str, color: str, expected: int) -> None:
    assert class_id(shape, material, color) == expected


def test_object_class_inverts_class_id() -> None:
    for cid in range(1, NUM_CLASSES):
        cls = object_class(cid)
        assert class_id(cls.shape, cls.material, cls.color) == cid


def test_unknown_attribute_and_out_of_range_id_raise() -> None:
    with pytest.raises(ValueError, match="unknown color 'pink'"):
        class_id("cube", "metal", "pink")
    with pytest.raises(ValueError, match=r"1\.\.48"):
        object_class(49)


def test_names_and_palette_cover_every_class_with_distinct_colours() -> None:
    assert len(class_names()) == NUM_CLASSES and class_names()[0] == "background"
    assert len(set(class_palette())) == NUM_CLASSES
