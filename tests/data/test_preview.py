"""`python -m data.synth.preview`: a picture of a data root's videos, and one line for what it cannot draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.classes import colour_masks
from data.layout import index_split, read_video
from data.synth.preview import main


def test_a_row_of_frames_and_a_row_of_their_masks_per_video(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "strip.png"
    assert main([str(synth_root), str(out), "--split", "val", "--videos", "1", "--frames", "0", "21"]) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == (2 * (160 + 2), 2 * (240 + 2), 3)  # frames above masks, a 2-pixel white gap after each
    frames, masks = read_video(index_split(synth_root, "val")[1])  # the second val video
    assert masks is not None
    assert (picture[:160, 242 : 242 + 240] == frames[21]).all()
    assert (picture[162 : 162 + 160, :240] == colour_masks(masks[:1])[0]).all()
    assert (picture[160:162] == 255).all()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--videos", "0", "7"], "--videos [7]: split 'train' of"),
        (["--frames", "0", "22"], "--frames [22]: video 0 has frames 0..21"),
        (["--split", "nowhere"], "unknown split 'nowhere'"),
    ],
)
def test_what_it_cannot_draw_is_one_line(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    out = tmp_path / "strip.png"
    assert main([str(synth_root), str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_missing_root_or_an_out_file_of_no_picture_type_is_one_line(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "nowhere"), str(tmp_path / "strip.png")]) == 2
    assert capsys.readouterr().err.startswith(f"error: data root {tmp_path / 'nowhere'} does not exist (expected a")
    assert main([str(synth_root), str(tmp_path / "strip.txt")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: OUT {tmp_path / 'strip.txt'}: not a picture type it can write (.png, .jpg, ...)\n"
    )
    assert main([str(synth_root), str(tmp_path / "strip.psd")]) == 2  # a type Pillow reads but cannot write
    assert "strip.psd: not a picture type it can write" in capsys.readouterr().err
    assert main([str(synth_root), str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"error: OUT {tmp_path} is a folder; name the picture file, e.g. {tmp_path / 'preview.png'}\n"
    )


def test_a_file_of_the_data_root_is_never_written_over(copy_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = copy_root / "train" / "video_0" / "image_0.png"
    before = frame.read_bytes()
    assert main([str(copy_root), str(frame)]) == 2
    assert capsys.readouterr().err == (
        f"error: OUT {frame} is a file of the data root {copy_root}: writing it would change the data\n"
    )
    assert frame.read_bytes() == before


def test_a_hidden_video_is_drawn_with_the_default_frames_it_has(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """11 frames and no masks: the defaults past frame 10 are left out, not refused as flags never given."""
    assert main([str(synth_root), str(tmp_path / "h.png"), "--split", "hidden", "--videos", "0"]) == 0
    assert Image.open(tmp_path / "h.png").size == (4 * (240 + 2), 160 + 2)
