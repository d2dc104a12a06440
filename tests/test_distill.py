"""effkeras.distill: a distillation loss that is the KL divergence, and checked inputs."""

from __future__ import annotations

import numpy as np
import pytest


def _kl_reference(teacher_logits, student_logits, t):
    def softmax(z):
        z = z / t
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(teacher_logits.astype(np.float64)), softmax(student_logits.astype(np.float64))
    return float(np.mean(np.sum(p * np.log(p / q), -1)) * t * t)


def _mlp(n_in, hidden, n_out, name, softmax=False, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((n_in,))
    x = keras.layers.Dense(hidden, activation="relu")(inp)
    out = keras.layers.Dense(n_out, activation="softmax" if softmax else None)(x)
    return keras.Model(inp, out, name=name)


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_loss_is_temperature_scaled_kl(t):
    from effkeras.distill import logits_distillation

    rng = np.random.default_rng(0)
    teacher = rng.normal(0, 3, (16, 10)).astype("float32")
    student = rng.normal(0, 3, (16, 10)).astype("float32")
    loss = logits_distillation(t)
    got = float(loss.compute_loss(teacher, student))
    assert got == pytest.approx(_kl_reference(teacher, student, t), rel=2e-3)
    assert got > 0
    assert float(loss.compute_loss(teacher, teacher)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("bad", [0, -2.0, "4", None, True, float("nan")])
def test_bad_temperature_named(bad):
    from effkeras.distill import logits_distillation
    from effkeras.errors import DistillationError

    with pytest.raises(DistillationError, match="temperature must be a positive number") as e:
        logits_distillation(bad)
    assert repr(bad) in str(e.value)


def test_distiller_rejects_bad_setups():
    import keras

    from effkeras.distill import distiller
    from effkeras.errors import DistillationError

    teacher = _mlp(6, 32, 4, "teacher")
    student = _mlp(6, 8, 4, "student")
    with pytest.raises(DistillationError, match="ends in a softmax.*logits"):
        distiller(_mlp(6, 32, 4, "soft_teacher", softmax=True), student)
    with pytest.raises(DistillationError, match="student 'soft_student' ends in a softmax"):
        distiller(teacher, _mlp(6, 8, 4, "soft_student", softmax=True))
    with pytest.raises(DistillationError, match=r"teacher 'teacher' gives \(4,\), student 'wide' gives \(5,\)"):
        distiller(teacher, _mlp(6, 8, 5, "wide"))
    unbuilt = keras.Sequential([keras.layers.Dense(4)], name="unbuilt")
    with pytest.raises(DistillationError, match="student 'unbuilt' has no defined outputs.*keras.Input"):
        distiller(teacher, unbuilt)
    with pytest.raises(DistillationError, match="same model"):
        distiller(teacher, teacher)
    with pytest.raises(DistillationError, match="must be a keras.Model. Received: ndarray"):
        distiller(np.zeros(3), student)
    with pytest.raises(DistillationError, match=r"student_loss_weight must be a number in \[0, 1\]. Received: 1.5"):
        distiller(teacher, student, student_loss_weight=1.5)
    with pytest.raises(DistillationError, match="Received: -1"):
        distiller(teacher, student, temperature=-1)
    assert teacher.trainable  # nothing changed by the failed calls


def test_distillation_makes_the_student_follow_the_teacher():
    """A student trained only on the teacher's soft targets (student_loss_weight=0) moves
    towards the teacher: its KL to the teacher falls and it agrees with the teacher's labels,
    which here differ from the ground truth it never sees."""
    import keras

    from effkeras.distill import distiller

    rng = np.random.default_rng(1)
    x = rng.normal(size=(512, 6)).astype("float32")
    w = rng.normal(size=(6, 4)).astype("float32")
    # teacher: fixed logits 3 * x @ w
    teacher = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="lin")], name="teacher")
    teacher.layers[-1].set_weights([3 * w, np.zeros(4, "float32")])
    y_truth = rng.integers(0, 4, len(x))  # unrelated to the teacher
    student = _mlp(6, 16, 4, "student", seed=2)

    t_logits = teacher.predict(x, verbose=0)
    before = _kl_reference(t_logits, student.predict(x, verbose=0), 4.0)
    d = distiller(teacher, student, temperature=4.0, student_loss_weight=0.0)
    d.compile(optimizer=keras.optimizers.Adam(1e-2),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = d.fit(x, y_truth, epochs=30, batch_size=64, verbose=0)
    after = _kl_reference(t_logits, student.predict(x, verbose=0), 4.0)

    assert not teacher.trainable
    assert min(hist.history["distillation_loss"]) >= 0
    assert after < 0.2 * before, (before, after)
    agree = np.mean(np.argmax(student.predict(x, verbose=0), -1) == np.argmax(t_logits, -1))
    assert agree > 0.9, agree
