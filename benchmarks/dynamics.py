"""A learned correction to the motion rule from object tracks (issue 31), on true masks, with a learning curve:

    python -m benchmarks.dynamics --data ROOT [--more-train ROOT2 ...] [--train-sizes 300 1000 3000] [--out table.md]

For each object of mask 11 (frame index 10), features of its track over frames 1-11 (data.tracks: centroid
velocities, area, bounding box, edges, frames seen) and of its nearest neighbour (where a collision comes
from), and the rule's own move (models.motion: the velocity fitted over frames 9-11, slowed by friction);
gradient-boosted trees (scikit-learn) learn how far the object's true move to frame 22 differs from the
rule's. Mask 11 is then drawn moved by the rule's move plus that correction (models.motion.move_objects: the
nearer object on top), so the model composes with the rule. Each row of the table is the competition IoU of
mask 22 over ROOT's val videos: copy-last, the rule, the learned correction trained on the first N train
videos' tracks for each N of --train-sizes, and the rigid ceiling (each object moved by its true move).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import HistGradientBoostingRegressor

from data.cache import DecodedSplit, decode_split
from data.classes import LAST_INPUT_FRAME, NUM_CLASSES, TARGET_FRAME
from data.metric import competition_iou
from data.tracks import read_tracks, tracks_folder, write_tracks
from models.motion import TRACK_FRAMES, move_objects, track_velocity, travel

STEPS = TARGET_FRAME - LAST_INPUT_FRAME  # 11 frames on
HISTORY = 5  # the last frames of the track the features describe
KEY = ["video_id", "object"]


def split_tracks(split: DecodedSplit, cache_dir: Path) -> pd.DataFrame:
    assert split.masks is not None
    masks_file = Path(split.masks.filename)  # type: ignore[attr-defined]
    return read_tracks(write_tracks(split.ids, masks_file, tracks_folder(cache_dir, masks_file)))


def rule_moves(masks: np.ndarray, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The rule's move of each object of mask 11 to frame 22, (N, 49) rows and columns, as extrapolate_masks
    computes it (its velocity over frames 9-11 times `travel`)."""
    ys, xs = [], []
    for start in range(0, len(masks), batch):
        frames = slice(LAST_INPUT_FRAME + 1 - TRACK_FRAMES, LAST_INPUT_FRAME + 1)  # 9-11
        window = torch.from_numpy(np.array(masks[start : start + batch, frames]))
        vy, vx = track_velocity(window.long(), TRACK_FRAMES)
        ys.append(vy * travel(STEPS))
        xs.append(vx * travel(STEPS))
    return torch.cat(ys), torch.cat(xs)


def video_rows(ids: np.ndarray, index: pd.Index) -> np.ndarray:
    """For each row of a (video_id, object) index, its video's row in the split's arrays (int64)."""
    row_of = {int(v): k for k, v in enumerate(ids)}
    return np.array([row_of[int(v)] for v in index.get_level_values("video_id")], dtype=np.int64)


def object_table(tracks: pd.DataFrame, ids: np.ndarray, rule: tuple[torch.Tensor, torch.Tensor]) -> pd.DataFrame:
    """One row per object present in mask 11: its features, the rule's move and (where it is in mask 22) its
    true move; indexed by video_id and object."""
    frames = tracks[tracks["frame"] <= TARGET_FRAME].set_index([*KEY, "frame"])
    last = frames.xs(LAST_INPUT_FRAME, level="frame")
    last = last[last["present"]]
    table = pd.DataFrame(index=last.index)
    for name in ("row", "col", "area", "top", "bottom", "left", "right", "visible", "edge"):
        table[name] = last[name].astype(float)
    kind = last.index.get_level_values("object").to_numpy() - 1  # class id = shape * 16 + material * 8 + colour + 1
    table["shape"], table["material"] = kind // 16, (kind // 8) % 2  # a sphere rolls on, rubber and metal slide apart
    for back in range(1, HISTORY):  # velocities between the last HISTORY frames, NaN where absent
        now = frames.xs(LAST_INPUT_FRAME - back + 1, level="frame").reindex(last.index)
        before = frames.xs(LAST_INPUT_FRAME - back, level="frame").reindex(last.index)
        table[f"vy{back}"] = now["row"] - before["row"]
        table[f"vx{back}"] = now["col"] - before["col"]
        table[f"area{back}"] = now["area"] / before["area"].replace(0, np.nan)
    seen = frames[frames["present"]].reset_index()
    table["frames_seen"] = seen[seen["frame"] <= LAST_INPUT_FRAME].groupby(KEY).size().reindex(last.index)
    rows = video_rows(ids, last.index)
    at = (torch.from_numpy(rows), torch.from_numpy(last.index.get_level_values("object").to_numpy().astype(np.int64)))
    table["rule_dy"] = rule[0][at].numpy()
    table["rule_dx"] = rule[1][at].numpy()
    _neighbours(table)
    future = frames.xs(TARGET_FRAME, level="frame").reindex(last.index)
    there = future["present"].fillna(False).astype(bool)
    table["true_dy"] = np.where(there, future["row"] - last["row"], np.nan)
    table["true_dx"] = np.where(there, future["col"] - last["col"], np.nan)
    return table


def _neighbours(table: pd.DataFrame) -> None:
    """The nearest other object of the same mask 11: its offset, distance and the rule's move relative to this
    object's (two objects heading for each other collide); NaN for an object alone."""
    for column in ("n_dy", "n_dx", "n_dist", "n_rel_dy", "n_rel_dx", "objects"):
        table[column] = np.nan
    for _, group in table.groupby(level="video_id"):
        pos = group[["row", "col"]].to_numpy()
        move = group[["rule_dy", "rule_dx"]].to_numpy()
        table.loc[group.index, "objects"] = len(group)
        if len(group) < 2:
            continue
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=2) + np.eye(len(group)) * 1e9
        near = dist.argmin(axis=1)
        table.loc[group.index, "n_dy"] = pos[near, 0] - pos[:, 0]
        table.loc[group.index, "n_dx"] = pos[near, 1] - pos[:, 1]
        table.loc[group.index, "n_dist"] = dist[np.arange(len(group)), near]
        table.loc[group.index, "n_rel_dy"] = move[near, 0] - move[:, 0]
        table.loc[group.index, "n_rel_dx"] = move[near, 1] - move[:, 1]


FEATURES = [
    *("row", "col", "area", "top", "bottom", "left", "right", "visible", "edge", "frames_seen", "rule_dy", "rule_dx"),
    *("shape", "material"),
    *(f"{k}{b}" for b in range(1, HISTORY) for k in ("vy", "vx", "area")),
    *("n_dy", "n_dx", "n_dist", "n_rel_dy", "n_rel_dx", "objects"),
]


def fit_correction(train: pd.DataFrame, seed: int = 0) -> list[HistGradientBoostingRegressor]:
    """Two regressors, rows then columns, of the true move less the rule's, on the objects still in mask 22."""
    known = train.dropna(subset=["true_dy", "true_dx"])
    models = []
    for axis in ("dy", "dx"):
        model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=seed)
        model.fit(known[FEATURES], known[f"true_{axis}"] - known[f"rule_{axis}"])
        models.append(model)
    return models


def draw(masks: np.ndarray, ids: np.ndarray, table: pd.DataFrame, dy: np.ndarray, dx: np.ndarray) -> torch.Tensor:
    """Mask 11 of each video with each object of `table` moved by (dy, dx); others (absent from mask 11) stay."""
    moves_y = torch.zeros(len(ids), NUM_CLASSES, dtype=torch.long)
    moves_x = torch.zeros(len(ids), NUM_CLASSES, dtype=torch.long)
    rows = torch.from_numpy(video_rows(ids, table.index))
    objects = torch.tensor(table.index.get_level_values("object").to_numpy(), dtype=torch.long)
    moves_y[rows, objects] = torch.from_numpy(np.round(dy)).long()
    moves_x[rows, objects] = torch.from_numpy(np.round(dx)).long()
    last = torch.from_numpy(np.array(masks[:, LAST_INPUT_FRAME])).long()
    return move_objects(last, moves_y, moves_x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a data root with labelled train and val splits")
    parser.add_argument("--train-sizes", type=int, nargs="+", default=[300, 1000, 3000], help="train videos")
    parser.add_argument(
        "--more-train", type=Path, nargs="*", default=[], help="more roots whose train videos join ROOT's, in order"
    )
    parser.add_argument("--cache", type=Path, default=None, help="tracks folder root (default: $SEGTUNE_CACHE)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    from data.cache import default_cache_dir

    cache = args.cache or default_cache_dir()
    started = time.perf_counter()
    val = decode_split(args.data, "val", progress=False)
    pool, videos = [], 0  # the train objects of every root, each with its video's place in the pool
    for root in [args.data, *args.more_train]:
        train = decode_split(root, "train", progress=False)
        if train.masks is None or val.masks is None:
            print(f"error: {root} needs labelled splits (train, and val in --data)", file=sys.stderr)
            return 2
        table = object_table(split_tracks(train, cache), train.ids, rule_moves(train.masks))
        place = {int(v): videos + k for k, v in enumerate(train.ids)}
        pool.append(table.assign(order=[place[int(v)] for v in table.index.get_level_values("video_id")]))
        videos += len(train)
    assert val.masks is not None
    objects = object_table(split_tracks(val, cache), val.ids, rule_moves(val.masks))
    trains = pd.concat(pool)
    print(f"tracks and features of {videos} train and {len(val)} val videos: {time.perf_counter() - started:.0f} s")
    target = torch.from_numpy(np.array(val.masks[:, TARGET_FRAME])).long()
    rule = (objects["rule_dy"].to_numpy(), objects["rule_dx"].to_numpy())
    rows = {
        "copy last (mask 11)": torch.from_numpy(np.array(val.masks[:, LAST_INPUT_FRAME])).long(),
        "the rule (extrapolate)": draw(val.masks, val.ids, objects, *rule),
    }
    for size in args.train_sizes:
        if size > videos:
            continue
        mine = trains[trains["order"] < size]
        fitted = fit_correction(mine)
        dy, dx = (rule[k] + fitted[k].predict(objects[FEATURES]) for k in (0, 1))
        rows[f"rule + learned correction, {size} train videos ({len(mine)} objects)"] = draw(
            val.masks, val.ids, objects, dy, dx
        )
    truth = (objects["true_dy"].fillna(objects["rule_dy"]), objects["true_dx"].fillna(objects["rule_dx"]))
    rows["rigid ceiling (each object moved by its true move)"] = draw(
        val.masks, val.ids, objects, truth[0].to_numpy(), truth[1].to_numpy()
    )
    lines = [f"| answer for mask 22 ({len(val)} val videos, true masks) | competition IoU |", "| --- | --- |"]
    lines += [f"| {name} | {competition_iou(pred, target):.4f} |" for name, pred in rows.items()]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
