"""Per-AU loss weights from occurrence rates (paper Sec. 3.4, docs/network.md).

NumPy only, so the preprocessing job can write the weights of each training split into
stats.json without importing Keras; the losses take the weights as given.
"""
import numpy as np


def au_loss_weights(occurrence_rates) -> np.ndarray:
    """Per-AU loss weights w_i = (1/r_i) * n_au / sum_k (1/r_k) (paper Sec. 3.4; they sum to n_au).

    occurrence_rates: 1-D sequence, r_i = share of frames with AU i present among the frames where
    AU i is known, in the training split. Every rate must lie in (0, 1].
    """
    rates = np.asarray(occurrence_rates, dtype=np.float64)
    if rates.ndim != 1 or rates.size == 0:
        raise ValueError(f"occurrence_rates must be a non-empty 1-D sequence, got shape {rates.shape}")
    for index, rate in enumerate(rates):
        if not np.isfinite(rate) or rate <= 0.0 or rate > 1.0:
            why = ("the AU never occurs in the training split, so its weight 1/r is infinite"
                   if rate == 0 else "a rate must lie in (0, 1]")
            raise ValueError(f"occurrence rate of AU index {index} is {rate!r}: {why}")
    inverse = 1.0 / rates
    return (inverse * rates.size / inverse.sum()).astype(np.float32)
