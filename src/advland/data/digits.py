"""scikit-learn's 8x8 handwritten digits (1797 images, bundled with scikit-learn, no download).

There is no official test split, so a fixed stratified 80/20 split (random_state=0, independent of
the carve seed) stands in for it: 1437 training and 360 test images.
"""

from __future__ import annotations

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from ._common import Arrays, floats, labels


def load_official() -> Arrays:
    """(train_x, train_y, test_x, test_y); x of shape (N, 1, 8, 8), pixel values 0..16 divided by 16."""
    digits = load_digits()
    x = digits.images[:, None] / 16
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    return floats(x_train), labels(y_train), floats(x_test), labels(y_test)
