"""Plots used across the notebooks: image grids (plain and signed) and code scatter plots."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def show_images(images: torch.Tensor, ncol: int = 10, title: str | None = None, cmap: str = "gray",
                vmin: float | None = 0.0, vmax: float | None = 1.0) -> None:
    """Show a batch of grey (B,1,H,W) or colour (B,3,H,W) images as a grid with `ncol` columns."""
    images = images.detach().cpu()
    nrow = (len(images) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 0.9, nrow * 0.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, images):
        if image.shape[0] == 3:  # colour: RGB channels last, as imshow wants them
            ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
        else:
            ax.imshow(image.squeeze(0).numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
    if title:
        fig.suptitle(title)
    plt.show()


def show_signed_images(images: torch.Tensor, ncol: int = 10, title: str | None = None, limit: float = 1.5) -> None:
    """Show images with negative pixels (varianceMNIST, model samples) in one diverging map: red below 0, blue above."""
    show_images(images, ncol=ncol, title=title, cmap="RdBu", vmin=-limit, vmax=limit)


def scatter_codes(codes: torch.Tensor, labels: torch.Tensor, title: str | None = None) -> None:
    """Scatter 2-D codes coloured by their digit label."""
    codes, labels = codes.detach().cpu(), labels.detach().cpu()
    fig, ax = plt.subplots(figsize=(6, 6))
    points = ax.scatter(codes[:, 0].numpy(), codes[:, 1].numpy(), c=labels.numpy(), cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    if title:
        ax.set_title(title)
    plt.show()
