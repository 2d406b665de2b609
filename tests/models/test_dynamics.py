"""The object-dynamics model: the rule it corrects, computed from tracks, is the rule on masks; untrained, it is
that rule; each video's answer is its own whatever else is in the batch; its objects hear each other only
through its rounds of messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data.cache import decode_split
from data.classes import INPUT_FRAMES, LAST_INPUT_FRAME
from data.tracks import dense_tracks, tracks_table
from models.dynamics import C, DynamicsConfig, ObjectDynamics, draw_moves, rule_moves
from models.motion import extrapolate_masks
from models.registry import create_model, model_entry


@pytest.fixture(scope="module")
def true_tracks(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.Tensor, torch.Tensor]:
    """(dense tracks of frames 1-11 (N, 11, 49, channels), masks of frames 1-11 (N, 11, H, W)) of train and val."""
    cache = tmp_path_factory.mktemp("cache")
    masks = np.concatenate(
        [
            np.asarray(decode_split(synth_root, s, cache_dir=cache, progress=False).masks)[:, :11]
            for s in ("train", "val")
        ]
    )
    ids = np.arange(len(masks))
    tracks = dense_tracks(tracks_table(ids, masks).to_pandas(), ids, INPUT_FRAMES)
    return torch.from_numpy(tracks), torch.from_numpy(masks).long()


def test_the_rule_from_tracks_draws_what_the_rule_on_masks_draws(
    true_tracks: tuple[torch.Tensor, torch.Tensor],
) -> None:
    tracks, masks = true_tracks
    moves = rule_moves(tracks)
    assert moves.abs().sum() > 0  # objects move in these videos
    assert torch.equal(draw_moves(masks[:, LAST_INPUT_FRAME], moves), extrapolate_masks(masks))


def test_an_untrained_model_is_the_rule_and_moves_no_absent_object(
    true_tracks: tuple[torch.Tensor, torch.Tensor],
) -> None:
    tracks, _ = true_tracks
    assert model_entry("object_dynamics").input_kind == "tracks" and model_entry("object_dynamics").output == "moves"
    model = create_model("object_dynamics", DynamicsConfig(width=8, rounds=2)).eval()
    with torch.no_grad():
        out = model(tracks)
    assert out.shape == (len(tracks), 49, 2)
    torch.testing.assert_close(out, rule_moves(tracks))
    absent = tracks[:, -1, :, C["present"]] == 0
    assert (out[absent] == 0).all()


def _trained_looking(cfg: DynamicsConfig) -> ObjectDynamics:
    """A model whose every weight is random (its head too): outputs that differ from the rule."""
    torch.manual_seed(0)
    model = ObjectDynamics(cfg).eval()
    for parameter in model.head.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    return model


def test_each_videos_moves_are_its_own_whatever_the_batch(true_tracks: tuple[torch.Tensor, torch.Tensor]) -> None:
    tracks, _ = true_tracks
    model = _trained_looking(DynamicsConfig(width=8, rounds=1))
    with torch.no_grad():
        together = model(tracks)
        alone = torch.cat([model(tracks[k : k + 1]) for k in range(len(tracks))])
    assert not torch.allclose(together, rule_moves(tracks))  # the head adds something
    torch.testing.assert_close(together, alone)


@pytest.mark.parametrize(("rounds", "heard"), [(0, False), (1, True)])
def test_an_object_hears_the_others_only_through_messages(
    true_tracks: tuple[torch.Tensor, torch.Tensor], rounds: int, heard: bool
) -> None:
    tracks, _ = true_tracks
    present = tracks[:, -1, :, C["present"]] > 0
    video = int(torch.nonzero(present.sum(1) >= 2)[0])  # a video with two objects in frame 11
    first, second = torch.nonzero(present[video]).flatten()[:2].tolist()
    model = _trained_looking(DynamicsConfig(width=8, rounds=rounds))
    moved = tracks[video : video + 1].clone()
    moved[:, :, second, C["row"]] += 7  # the other object elsewhere, the first one's own track unchanged
    with torch.no_grad():
        before, after = model(tracks[video : video + 1])[0, first], model(moved)[0, first]
    assert (not torch.allclose(before, after)) == heard


@pytest.mark.parametrize(
    "settings", [{"width": 0}, {"rounds": -1}, {"history": 1}, {"track_frames": 12}, {"dropout": 1.0}, {"retention": 0}]
)
def test_a_bad_config_is_refused(settings: dict[str, float]) -> None:
    (name,) = settings
    with pytest.raises(ValueError, match=name):  # the field named, not another check's error
        DynamicsConfig(**settings)  # type: ignore[arg-type]
