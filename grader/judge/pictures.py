"""Small PNG pictures of a student's results, drawn in the TA's process for the feedback (Pillow, no plotting).

`image_rows` lays rows of digits side by side (inputs, the student's outputs, a reference solution's, the clean
images); `maps` draws 2-D maps side by side, coloured by digit label (`code_panel` projects codes to 2-D first).
`reference_row` and `reference_panels` add what a reference solution made of the same task (grader/judge/beside.py)
when it is kept. Values come from collections, so they are clamped and NaN-free before drawing; every picture is a
few kilobytes.
"""
from __future__ import annotations

import io
from typing import Callable

import torch
from PIL import Image, ImageDraw

from grader.collect.common import PICTURED_SAMPLES
from grader.judge.beside import LABEL, reference_value

SCALE = 2           # each 28x28 digit is drawn 56x56
LABEL_WIDTH = 150   # pixels left of each row for its label
COUNT = 10          # digits per row
MAP_SIZE = 360      # pixels of a scatter map's square
MAP_POINTS = 2000   # codes drawn on a code map
Panel = tuple[torch.Tensor, torch.Tensor, str]  # a map: points (N, 2 or more), their digit labels, a title
# Ten distinct colours for the digit labels 0-9.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def png(image: Image.Image) -> bytes:
    """The image encoded as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def digit(values: torch.Tensor) -> Image.Image:
    """One 28x28 image with values in [0, 1] (others clamped, NaN black), scaled up."""
    pixels = torch.nan_to_num(values.detach().double().reshape(28, 28), nan=0.0).clamp(0, 1)
    image = Image.fromarray((pixels * 255).round().byte().numpy(), mode="L")
    return image.resize((28 * SCALE, 28 * SCALE), Image.NEAREST)


def image_rows(rows: list[tuple[str, torch.Tensor]], count: int = COUNT) -> bytes:
    """A PNG with one labelled row of the first `count` digits of each batch (N, 1, 28, 28) or (N, 784)."""
    side, gap = 28 * SCALE, 4
    canvas = Image.new("L", (LABEL_WIDTH + count * (side + gap), len(rows) * (side + gap) + gap), 255)
    draw = ImageDraw.Draw(canvas)
    for row, (label, images) in enumerate(rows):
        top = gap + row * (side + gap)
        draw.text((4, top + side // 2 - 6), label, fill=0)
        for column, values in enumerate(images[:count]):
            canvas.paste(digit(values), (LABEL_WIDTH + column * (side + gap), top))
    return png(canvas)


def scatter(points: torch.Tensor, labels: torch.Tensor, title: str) -> Image.Image:
    """2-D points coloured by digit label, with a legend and a title."""
    points = torch.nan_to_num(points.detach().double()[:, :2], nan=0.0, posinf=0.0, neginf=0.0)
    low, high = points.min(dim=0).values, points.max(dim=0).values
    scaled = (points - low) / (high - low).clamp_min(1e-12) * (MAP_SIZE - 20) + 10
    canvas = Image.new("RGB", (MAP_SIZE + 60, MAP_SIZE + 24), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 4), title, fill=(0, 0, 0))
    for (x, y), label in zip(scaled.tolist(), labels.tolist()):
        colour = PALETTE[int(label) % 10]
        draw.ellipse((x - 2, y + 22, x + 2, y + 26), fill=colour)
    for label, colour in enumerate(PALETTE):
        top = 30 + 18 * label
        draw.rectangle((MAP_SIZE + 20, top, MAP_SIZE + 30, top + 10), fill=colour)
        draw.text((MAP_SIZE + 36, top - 1), str(label), fill=(0, 0, 0))
    return canvas


def maps(panels: list[Panel]) -> bytes:
    """A PNG of 2-D maps (points, labels, title) side by side."""
    images = [scatter(*panel) for panel in panels]
    canvas = Image.new("RGB", (sum(image.width for image in images), max(image.height for image in images)),
                       (255, 255, 255))
    left = 0
    for image in images:
        canvas.paste(image, (left, 0))
        left += image.width
    return png(canvas)


def code_panel(codes: torch.Tensor, labels: torch.Tensor, title: str, count: int = MAP_POINTS) -> Panel:
    """A map of codes projected on their first two principal components, coloured by digit label."""
    codes = torch.nan_to_num(codes.detach().double()[:count], nan=0.0, posinf=0.0, neginf=0.0)
    centred = codes - codes.mean(dim=0)
    if codes.shape[1] > 2:
        _, _, basis = torch.linalg.svd(centred, full_matrices=False)
        centred = centred @ basis[:2].T
    return centred, labels[:count], title


def reference_row(key: str, like: torch.Tensor, what: str, label: str = LABEL,
                  transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[tuple[str, torch.Tensor]]:
    """The row of a reference solution's images `key` (shaped like the student's `like`), or none when not kept."""
    value = reference_value(key, tuple(like.shape), what)
    return [] if value is None else [(label, transform(value) if transform else value)]


def reference_reconstructions(reconstructions: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """The row of a reference solution's reconstructions of the held-out images, or none when not kept."""
    return reference_row("reconstructions", reconstructions, "its reconstructions of the same test images")


def reference_panels(key: str, like: torch.Tensor, labels: torch.Tensor, title: str, what: str) -> list[Panel]:
    """The code map of a reference solution's codes `key` (shaped like the student's `like`), or none when not kept."""
    value = reference_value(key, tuple(like.shape), what)
    return [] if value is None else [code_panel(value, labels, title)]


def sample_rows(samples: object) -> list[tuple[str, torch.Tensor]]:
    """The student's samples from the prior's fixed codes and a reference solution's from the same (none if unusable)."""
    if not (isinstance(samples, torch.Tensor) and samples.is_floating_point() and samples.dim() >= 2
            and len(samples) == PICTURED_SAMPLES and samples[0].numel() == 28 * 28):
        return []
    return [("your samples", samples), *reference_row("samples", samples, "its samples from the same codes z ~ N(0, I)",
                                                      label="reference's samples")]
