"""Reference figures measured on the reference solution, and the thresholds derived from them.

Figures come from `aecourse measure` on the reference checkpoints trained in offline mode
(train = 8,000 and test = 2,000 images of the official test split). With the full 60k training
set a correct solution does better, so thresholds set here are safe for a real course run too.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A measured reference value and the threshold a submission must reach."""
    reference: float
    threshold: float
    higher_is_better: bool

    @property
    def margin(self) -> float:
        """Relative distance between the reference and the threshold."""
        return abs(self.reference - self.threshold) / abs(self.reference)


AE = {
    # 10-D autoencoder: per-pixel test MSE (PCA with 10 components: 0.036; mean image: 0.067).
    "ae10_mse": Figure(reference=0.0239, threshold=0.032, higher_is_better=False),
    # Logistic regression on the 10-D codes, accuracy on held-out images.
    "ae10_accuracy": Figure(reference=0.864, threshold=0.80, higher_is_better=True),
    # Compression autoencoder 784-128-32-128-784 with sigmoids: per-pixel test MSE.
    "compression_mse": Figure(reference=0.0153, threshold=0.025, higher_is_better=False),
    # Short training run of the student's Autoencoder(10) from scratch (400 Adam steps); a decoder
    # that ignores its codes cannot beat the mean image (0.067).
    "brief_training_mse": Figure(reference=0.0393, threshold=0.055, higher_is_better=False),
}
