"""Pruning schedules and mask structures: values, validation, config round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from effkeras.errors import PruningError
from effkeras.prune import (
    Block,
    Channel,
    ConstantSparsity,
    NByM,
    PolynomialDecay,
    PruningSchedule,
    Unstructured,
)
from effkeras.prune import structures as st


def test_constant_sparsity_turns():
    s = ConstantSparsity(0.6, begin_step=10, end_step=30, frequency=10)
    assert [s(t)[0] for t in (0, 9, 10, 15, 20, 30, 40)] == [
        False, False, True, False, True, True, False
    ]  # fmt: skip
    assert s(20)[1] == pytest.approx(0.6)


def test_polynomial_decay_values_follow_zhu_gupta():
    s = PolynomialDecay(0.1, 0.9, begin_step=0, end_step=100, power=3, frequency=30)
    assert s(0) == (True, pytest.approx(0.1))
    assert s(50)[1] == pytest.approx(0.9 + (0.1 - 0.9) * 0.5**3)
    assert s(200)[1] == pytest.approx(0.9)
    # end_step is a turn even though 100 is not a multiple of 30.
    assert s(100)[0] and s(90)[0] and not s(95)[0] and not s(101)[0]


@pytest.mark.parametrize(
    "make, text",
    [
        (lambda: ConstantSparsity(1.0, 0), "target_sparsity=1.0"),
        (lambda: ConstantSparsity(0.5, -1), "begin_step=-1"),
        (lambda: ConstantSparsity(0.5, 5, end_step=2), "end_step=2"),
        (lambda: ConstantSparsity(0.5, 0, frequency=0), "frequency=0"),
        (lambda: PolynomialDecay(0.0, 0.5, 10, 10), "end_step=10"),
        (lambda: PolynomialDecay(0.0, 0.5, 0, 10, power=0), "power=0"),
    ],
)
def test_bad_schedule_arguments_say_what_was_received(make, text):
    with pytest.raises(PruningError, match=text):
        make()


def test_schedule_config_round_trip_keeps_every_argument():
    for s in (ConstantSparsity(0.3, 4, 40, 7), PolynomialDecay(0.1, 0.7, 3, 99, 2, 11)):
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
        assert again == s and again.get_config() == s.get_config()


def test_custom_schedule_subclass():
    class Every(PruningSchedule):
        def __init__(self, sparsity):
            self.sparsity, self.begin_step, self.end_step, self.frequency = sparsity, 0, -1, 5

        def sparsity_at(self, step):
            return self.sparsity

        def get_config(self):
            return {"sparsity": self.sparsity}

    assert Every(0.25)(10) == (True, 0.25) and Every(0.25)(11)[0] is False


def test_unstructured_mask_prunes_exactly_the_smallest(rng):
    w = rng.normal(size=(6, 10)).astype("float32")
    mask, threshold = Unstructured().mask(w, 0.3)
    assert int((mask == 0).sum()) == 18
    assert np.abs(w[mask == 1]).min() == pytest.approx(threshold)
    assert np.abs(w[mask == 0]).max() <= threshold


def test_block_mask_zeroes_whole_blocks(rng):
    w = rng.normal(size=(8, 8)).astype("float32")
    mask, _ = Block((2, 4)).mask(w, 0.5)
    blocks = mask.reshape(4, 2, 2, 4).transpose(0, 2, 1, 3).reshape(8, 8)
    assert set(np.unique(blocks.sum(axis=1))) <= {0.0, 8.0}  # each block all 0 or all 1
    assert (mask == 0).mean() == pytest.approx(0.5)


def test_n_by_m_keeps_two_of_four_along_input_channels(rng):
    w = rng.normal(size=(3, 3, 8, 5)).astype("float32")
    mask, _ = NByM(2, 4).mask(w, 0.0)
    groups = np.moveaxis(mask, 2, -1).reshape(-1, 4)
    assert (groups.sum(axis=1) == 2).all()
    kept = np.moveaxis(np.abs(w), 2, -1).reshape(-1, 4)
    for row, k in zip(kept, groups, strict=True):
        assert row[k == 1].min() >= row[k == 0].max()


def test_n_by_m_rejects_channels_not_multiple_of_m():
    with pytest.raises(PruningError, match=r"multiple of 4 input channels.*\(3, 3, 6, 8\)"):
        NByM(2, 4).check((3, 3, 6, 8), "layer 'c'")


def test_channel_mask_removes_lowest_norm_filters_and_keeps_one(rng):
    w = rng.normal(size=(3, 3, 2, 6)).astype("float32")
    w[..., 4] *= 0.01
    mask, _ = Channel().mask(w, 0.2)
    assert (mask[..., 4] == 0).all() and (mask.reshape(-1, 6).max(axis=0) == 1).sum() == 5
    mask, _ = Channel().mask(w, 0.99)
    assert (mask.reshape(-1, 6).max(axis=0) == 1).sum() == 1


def test_structure_resolution_and_conflicts():
    assert st.get("2:4") == NByM(2, 4)
    assert st.get(sparsity_m_by_n=(2, 4)) == NByM(2, 4)
    assert st.get(block_size=(1, 4)) == Block((1, 4))
    assert st.get("channel") == Channel()
    with pytest.raises(PruningError, match="sparsity_m_by_n=.2, 4."):
        st.get("channel", sparsity_m_by_n=(2, 4))
    with pytest.raises(PruningError, match="structure='rows'"):
        st.get("rows")
