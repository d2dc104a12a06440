"""Channel pruning through Flatten -> Dropout -> Dense (the survey CNN's head)."""

from __future__ import annotations

import numpy as np


def test_channels_removed_through_flatten_and_dropout(digits):
    import keras

    import effkeras
    from effkeras import prune

    keras.utils.set_random_seed(2)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.Flatten(),
        L.Dropout(0.2),
        L.Dense(32, activation="relu"),
        L.Dropout(0.2),
        L.Dense(10, activation="softmax"),
    ])
    pruned = prune.prune_low_magnitude(
        model, pruning_schedule=prune.ConstantSparsity(0.5, 0, frequency=5), structure="channel"
    )
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(digits[0], digits[1], epochs=1, batch_size=64, verbose=0,
               callbacks=[effkeras.callbacks.UpdatePruningStep()])
    small = prune.strip_pruning(pruned)
    convs = [layer for layer in small.layers if isinstance(layer, L.Conv2D)]
    dense = [layer for layer in small.layers if isinstance(layer, L.Dense)]
    assert convs[0].filters == 8  # before this fix the Dropout blocked the conv entirely
    assert dense[0].kernel.shape == (8 * 8 * 8, 16)
    x = digits[2][:64]
    np.testing.assert_allclose(
        small.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5
    )
