"""Object dynamics (`object_dynamics`): each object's move from frame 11 to frame 22, learned from the tracks of
every object of a video (data.tracks), as a correction to the motion rule's move (models.motion).

The input is the dense tracks of frames 1-11 (data.tracks.dense_tracks: (B, 11, 49, channels), a slot per
object, its class id); the output the move of each object, rows and columns in pixels (B, 49, 2): the rule's
(its velocity fitted over frames 9-11, slowed by friction, `travel`) plus what the network adds. Mask 11 moved by
it (`draw_moves`, the nearer object on top) is the answer for mask 22, drawn as the rule draws it, so the model
composes with the rule and starts as the rule (its last layer starts at zero).

An interaction network (Battaglia et al., 2016): each object present in frame 11 is described by its own track
(position, size and box, velocities and area changes over the last `history` frames, frames seen, on the
picture's edge, shape and material from its class id, the rule's move), and in `rounds` rounds each object
sums and max-pools messages from every other object of the video (computed from both and their offset,
distance and the rules' moves relative to each other: where a collision comes from). Measured against
gradient-boosted trees on per-object features with the nearest neighbour (benchmarks/dynamics.py,
docs/models.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from data.classes import FRAME_HEIGHT, FRAME_WIDTH, FUTURE_FRAMES, MATERIALS, NUM_CLASSES, SHAPES, TRACK_CHANNELS
from models.config import check_positive
from models.motion import RETENTION, TRACK_FRAMES, fit_velocity, move_objects, travel
from models.registry import register_model

C = {name: k for k, name in enumerate(TRACK_CHANNELS)}  # channel of each track column
MOVE_SCALE = 10.0  # pixels of one unit of the network's output
POSITION_SCALE = 50.0  # pixels of one unit of an offset between two objects


@dataclass(frozen=True)
class DynamicsConfig:
    width: int = 64  # hidden channels of every MLP
    rounds: int = 1  # rounds of messages between the objects of a video (0: each object alone)
    history: int = 5  # the last frames whose velocities and area changes an object is described by
    dropout: float = 0.0
    retention: float = RETENTION  # the rule corrected: the share of its speed an object keeps a frame
    track_frames: int = TRACK_FRAMES  # ... and the last frames its velocity is fitted over

    def __post_init__(self) -> None:
        check_positive(self, "width")
        if self.rounds < 0:
            raise ValueError(f"DynamicsConfig.rounds must be >= 0, got {self.rounds}")
        if not 2 <= self.history <= 11 or not 2 <= self.track_frames <= 11:
            raise ValueError("DynamicsConfig.history and track_frames must be in 2..11")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"DynamicsConfig.dropout must be in [0, 1), got {self.dropout}")
        travel(1, self.retention)  # raises for a retention outside (0, 1]


def rule_moves(tracks: torch.Tensor, retention: float = RETENTION, track_frames: int = TRACK_FRAMES) -> torch.Tensor:
    """The motion rule's move of each object to frame 22 from dense tracks (B, T, K, channels): (B, K, 2) rows and
    columns, as extrapolate_masks moves it from the masks the tracks were made of (0 where it does not move one)."""
    window = tracks[:, -track_frames:]
    vy, vx = fit_velocity(window[..., C["present"]] > 0, window[..., C["row"]], window[..., C["col"]])
    return torch.stack((vy, vx), dim=-1) * travel(FUTURE_FRAMES, retention)


def draw_moves(mask: torch.Tensor, moves: torch.Tensor) -> torch.Tensor:
    """Class-id masks (B, H, W) with each object moved by `moves` (B, K, 2), rounded to pixels: (B, H, W) long."""
    rounded = moves.round().long()
    return move_objects(mask, rounded[..., 0], rounded[..., 1])


def _object_kinds() -> torch.Tensor:
    """(K, shapes + materials) one-hot of each class id's shape and material (0 for the background)."""
    kinds = torch.zeros(NUM_CLASSES, len(SHAPES) + len(MATERIALS))
    for cls in range(1, NUM_CLASSES):
        kind = cls - 1  # class id = shape * 16 + material * 8 + colour + 1
        kinds[cls, kind // (len(MATERIALS) * 8)] = 1
        kinds[cls, len(SHAPES) + (kind // 8) % len(MATERIALS)] = 1
    return kinds


def _mlp(inputs: int, width: int, outputs: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, width), nn.SiLU(),
        nn.Linear(width, outputs),
    )  # fmt: skip


class ObjectDynamics(nn.Module):
    PAIR = 7  # offset (2), distance, the rules' moves relative (2), last velocities relative (2)

    def __init__(self, cfg: DynamicsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.kinds: torch.Tensor
        self.register_buffer("kinds", _object_kinds(), persistent=False)
        self.features = 13 + 3 * (cfg.history - 1) + len(SHAPES) + len(MATERIALS)
        self.embed = _mlp(self.features, cfg.width, cfg.width, cfg.dropout)
        pair_inputs = 2 * cfg.width + self.PAIR
        self.messages = nn.ModuleList(_mlp(pair_inputs, cfg.width, cfg.width, cfg.dropout) for _ in range(cfg.rounds))
        self.updates = nn.ModuleList(_mlp(3 * cfg.width, cfg.width, cfg.width, cfg.dropout) for _ in range(cfg.rounds))
        self.head = _mlp(cfg.width, cfg.width, 2, cfg.dropout)
        last = self.head[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)  # the untrained model is the rule
        nn.init.zeros_(last.bias)

    def forward(self, tracks: torch.Tensor) -> torch.Tensor:
        """Dense tracks of frames 1-11 (B, T, K, channels) float -> each object's move (B, K, 2) in pixels."""
        tracks = tracks.float()
        rule = rule_moves(tracks, self.cfg.retention, self.cfg.track_frames)
        alive = tracks[:, -1, :, C["present"]] > 0  # (B, K): the objects of mask 11, the ones drawn
        b, k = alive.shape
        m = max(int(alive.sum(1).max()), 1) if b else 1
        slots = torch.argsort(alive.to(torch.int8), dim=1, descending=True, stable=True)[:, :m]  # (B, M)
        live = alive.gather(1, slots)
        own = self._describe(tracks, rule).gather(1, slots[..., None].expand(-1, -1, self.features))
        h = self.embed(own)
        if self.cfg.rounds:
            pair = self._pairs(tracks, rule, slots)  # (B, M, M, PAIR)
            others = live[:, None, :] & live[:, :, None] & ~torch.eye(m, dtype=torch.bool, device=tracks.device)
            for message, update in zip(self.messages, self.updates, strict=True):
                grid = torch.cat((h[:, :, None].expand(-1, -1, m, -1), h[:, None].expand(-1, m, -1, -1), pair), -1)
                sent = message(grid) * others[..., None]  # (B, M receiver, M sender, W)
                pooled = sent.masked_fill(~others[..., None], float("-inf")).amax(2).nan_to_num(0.0, 0.0, 0.0)
                h = h + update(torch.cat((h, sent.sum(2), pooled), -1))
        correction = self.head(h) * MOVE_SCALE * live[..., None]
        return rule + torch.zeros(b, k, 2, device=tracks.device, dtype=correction.dtype).scatter(
            1, slots[..., None].expand(-1, -1, 2), correction
        )

    def _describe(self, tracks: torch.Tensor, rule: torch.Tensor) -> torch.Tensor:
        """Each object's own features (B, K, features), in units near 1."""
        last = tracks[:, -1]
        present = tracks[..., C["present"]]
        row, col, area = last[..., C["row"]], last[..., C["col"]], last[..., C["area"]]
        parts = [
            row / FRAME_HEIGHT,
            col / FRAME_WIDTH,
            area.sqrt() / 20,
            (last[..., C["bottom"]] - row) / 20,
            (row - last[..., C["top"]]) / 20,
            (last[..., C["right"]] - col) / 20,
            (col - last[..., C["left"]]) / 20,
            last[..., C["visible"]],
            last[..., C["edge"]],
            present.mean(1),  # the share of frames 1-11 it was seen in
            rule[..., 0] / 20,
            rule[..., 1] / 20,
            (rule.norm(dim=-1) > 0).float(),  # whether the rule moves it at all
        ]
        for back in range(1, self.cfg.history):
            now, before = tracks[:, -back], tracks[:, -back - 1]
            both = now[..., C["present"]] * before[..., C["present"]]
            parts += [
                (now[..., C["row"]] - before[..., C["row"]]) * both / 5,
                (now[..., C["col"]] - before[..., C["col"]]) * both / 5,
                torch.log((now[..., C["area"]] + 1) / (before[..., C["area"]] + 1)) * both,
            ]
        kinds = self.kinds.expand(tracks.shape[0], -1, -1)
        return torch.cat((torch.stack(parts, -1), kinds), -1) * (present[:, -1, :, None] > 0)

    def _pairs(self, tracks: torch.Tensor, rule: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """For each receiver i and sender j of the live slots: (B, M, M, PAIR), sender less receiver."""
        last, before = tracks[:, -1], tracks[:, -2]
        both = last[..., C["present"]] * before[..., C["present"]]
        velocity = torch.stack(
            (
                (last[..., C["row"]] - before[..., C["row"]]) * both,
                (last[..., C["col"]] - before[..., C["col"]]) * both,
            ),
            -1,
        )
        position = torch.stack((last[..., C["row"]], last[..., C["col"]]), -1)
        picked = [x.gather(1, slots[..., None].expand(-1, -1, 2)) for x in (position, rule, velocity)]
        offset, relative_rule, relative_velocity = (x[:, None, :] - x[:, :, None] for x in picked)
        distance = offset.norm(dim=-1, keepdim=True)
        return torch.cat(
            (offset / POSITION_SCALE, distance / POSITION_SCALE, relative_rule / 20, relative_velocity / 5), -1
        )


@register_model("object_dynamics", DynamicsConfig, input_kind="tracks", output="moves")
def build_object_dynamics(cfg: DynamicsConfig) -> nn.Module:
    return ObjectDynamics(cfg)
