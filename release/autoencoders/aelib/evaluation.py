"""Ways to judge learned codes and reconstructions."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def encode(encoder: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Codes of `images` computed by `encoder` in batches, returned on the CPU."""
    device = next(encoder.parameters()).device
    codes = [encoder(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(codes)


def classifier_accuracy(train_codes: torch.Tensor, train_labels: torch.Tensor,
                        test_codes: torch.Tensor, test_labels: torch.Tensor) -> float:
    """Test accuracy of a logistic-regression classifier trained on the training codes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.asarray(train_codes, dtype=np.float64))
    classifier = LogisticRegression(max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings would land on stderr
        classifier.fit(scaler.transform(np.asarray(train_codes, dtype=np.float64)), np.asarray(train_labels))
    predictions = classifier.predict(scaler.transform(np.asarray(test_codes, dtype=np.float64)))
    return float((predictions == np.asarray(test_labels)).mean())


def mse_per_pixel(reconstructions: torch.Tensor, images: torch.Tensor) -> float:
    """Mean squared error per pixel between reconstructions and the original images."""
    return float(((reconstructions.float() - images.float()) ** 2).mean())
