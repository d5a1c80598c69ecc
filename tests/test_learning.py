"""The paper's own configuration learns: the full-size BP4D network memorises a few faces.

With the AU branches summed (the paper's and the Caffe release's choice), Keras' default
initialisation and losses taken from clipped probabilities, most AU outputs started beyond the
clip and got no gradient: this network did not learn its AUs at all.
"""
import time

import keras
import numpy as np
import pytest

import jaa_keras
from jaa_keras.losses import JaaNetLoss
from tests._synthetic_faces import synthetic_faces

FACES = 18          # seed 0 gives 18 faces in which every BP4D AU is both present and absent
BATCH = 9           # the paper's batch
EPOCHS = 12         # 24 steps; F1 first passed 0.95 after 20 (seed 0)
LEARNING_RATE = 1e-3


@pytest.mark.slow
def test_paper_network_overfits_eighteen_faces():
    images, targets = synthetic_faces(FACES, seed=0)
    present = targets["au"].sum(axis=0)
    assert np.all((present > 0) & (present < FACES)), "each AU must occur and be absent for F1"
    keras.utils.set_random_seed(0)
    model = jaa_keras.build_jaanet("bp4d")  # c = 8, crop 176, d = 512
    assert (model.config.local_merge, model.config.initialization) == ("sum", "caffe")
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=0.9),
                  objective=JaaNetLoss(model.config))
    start = time.perf_counter()
    history = model.fit(images, targets, batch_size=BATCH, epochs=EPOCHS, verbose=0).history
    print(f"{EPOCHS * FACES // BATCH} steps in {time.perf_counter() - start:.0f} s; "
          f"training-batch F1 per epoch {np.round(history['f1'], 3).tolist()}")
    assert history["f1"][-1] >= 0.95
