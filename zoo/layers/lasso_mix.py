"""Lasso-weighted mixing of residual units (Doersch & Zisserman 2017, sec. 3.2)."""

import keras
import numpy as np
from keras import ops

from zoo import internals
from zoo.errors import UserError

INITS = ("uniform", "last", "random")


@keras.saving.register_keras_serializable(package="zoo")
class LassoMix(keras.layers.Layer):
    """Feeds each task a unit-norm linear combination of M same-shaped unit outputs.

    For N tasks and M inputs the layer holds a matrix α (N x M), one trainable row per
    task. Task n receives

        out_n = Σ_m α̂_nm · Unit_m,   α̂_n = α_n / ‖α_n‖₂              (eq. 1)

    so every row the forward pass uses has unit L2 norm (entries may be negative), and
    the layer adds the lasso penalty `l1 · Σ_nm |α̂_nm|` to the model losses through
    `add_loss`. The penalty acts on the normalised α̂, the coefficients the forward pass
    uses. Evaluation tasks get rows of their own with `add_tasks` (the paper's "similar
    α matrix for the set of evaluation tasks"), trained while the trunk stays frozen.

    Args:
        task_names: list of str. One row per task, in this order.
        l1: float. Weight of the L1 penalty. Defaults to 1e-3.
        init: str or array. "uniform" (every entry 1/√M), "last" (all weight on the
            last input, i.e. the naive head on the block output), "random" (normal
            draws from `seed`, then normalised), or an array of shape (M,) or (N, M).
            Defaults to "uniform".
        seed: int. Seed of the "random" init. Defaults to 0.

    Call args:
        units: list of M tensors of identical shape.

    Returns:
        dict task name -> tensor of the shape of one unit.

    Example:

    >>> endpoints = trunk(images)
    >>> taps = [endpoints[f"block3/unit_{m}"] for m in range(1, 24)]
    >>> mixed = LassoMix(["rp", "col", "ex", "ms"], l1=1e-3)(taps)  # mixed["rp"]
    """

    def __init__(self, task_names, l1=1e-3, init="uniform", seed=0, **kwargs):
        super().__init__(**kwargs)
        task_names = [task_names] if isinstance(task_names, str) else list(task_names)
        self._check_names(task_names, existing=())
        if not (isinstance(l1, (int, float)) and l1 >= 0):
            raise UserError(f"LassoMix: `l1` must be a number >= 0. Received: l1={l1!r}")
        self._check_init(init)
        self.task_names = task_names
        self.l1 = float(l1)
        self.init = init.tolist() if isinstance(init, np.ndarray) else init
        self.seed = seed
        self.num_units = None
        self._rows = []

    @staticmethod
    def _check_names(names, existing):
        if not names or not all(isinstance(n, str) and n for n in names):
            raise UserError(
                f"LassoMix: `task_names` must be a non-empty list of non-empty strings. "
                f"Received: {names!r}"
            )
        seen = list(existing)
        for n in names:
            if n in seen:
                raise UserError(
                    f"LassoMix: task names must be unique; {n!r} is given twice "
                    f"(tasks: {seen + [n]})."
                )
            seen.append(n)

    @staticmethod
    def _check_init(init):
        if isinstance(init, str) and init not in INITS:
            raise UserError(
                f"LassoMix: `init` must be one of {list(INITS)} or an array of shape (M,) "
                f"or (N, M). Received: init={init!r}"
            )

    def _initial_rows(self, names, init, first_row):
        m = self.num_units
        if isinstance(init, str):
            if init == "uniform":
                return np.full((len(names), m), 1.0 / np.sqrt(m), "float32")
            if init == "last":
                rows = np.zeros((len(names), m), "float32")
                rows[:, -1] = 1.0
                return rows
            rng = np.random.default_rng([self.seed, first_row])
            rows = rng.normal(size=(len(names), m)).astype("float32")
            return rows / np.linalg.norm(rows, axis=1, keepdims=True)
        rows = np.asarray(init, "float32")
        if rows.shape == (m,):
            rows = np.tile(rows, (len(names), 1))
        if rows.shape != (len(names), m) or not np.all(np.linalg.norm(rows, axis=1) > 0):
            raise UserError(
                f"LassoMix: an array `init` must have shape ({m},) or ({len(names)}, {m}) "
                f"with no all-zero row for {len(names)} tasks over {m} units. "
                f"Received shape {rows.shape}."
            )
        return rows

    def _add_rows(self, names, init):
        values = self._initial_rows(names, init, first_row=len(self._rows))
        for name, value in zip(names, values):
            self._rows.append(
                self.add_weight(
                    shape=(self.num_units,),
                    initializer=keras.initializers.Constant(value),
                    name=f"alpha_{name}",
                )
            )

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or not input_shape
            or not all(isinstance(s, (list, tuple)) for s in input_shape)
        ):
            raise UserError(
                "LassoMix must be called on a list of M >= 1 tensors of the same shape. "
                f"Received input shape: {input_shape}"
            )
        shapes = [tuple(s) for s in input_shape]
        if any(s[1:] != shapes[0][1:] for s in shapes):
            raise UserError(
                "LassoMix: all inputs must have the same shape. Received shapes: "
                + ", ".join(str(s) for s in shapes)
            )
        self.num_units = len(shapes)
        self._add_rows(self.task_names, self.init)

    def add_tasks(self, task_names, init="uniform"):
        """Adds one trainable row per new task to a built layer; existing rows are kept.

        Args:
            task_names: list of str. Names not used by the layer yet.
            init: str or array. As in the constructor. Defaults to "uniform".
        """
        task_names = [task_names] if isinstance(task_names, str) else list(task_names)
        self._check_names(task_names, existing=self.task_names)
        self._check_init(init)
        if not self.built:
            raise UserError(
                "LassoMix.add_tasks needs a built layer (call it on its inputs first); "
                "before that, list every task in `task_names`."
            )
        with internals.state_unlocked(self):  # as Keras' own Dense.enable_lora does
            self._add_rows(task_names, init)
        self.task_names = self.task_names + task_names
        if not isinstance(self.init, str) or self.init != init:
            # Rebuilding from config must recreate each row with the right init.
            self.init = self._per_row_init()

    def _per_row_init(self):
        return [[float(v) for v in keras.ops.convert_to_numpy(r)] for r in self._rows]

    def _normalized(self):
        alpha = ops.stack([r.value for r in self._rows], axis=0)
        return alpha / ops.sqrt(ops.maximum(ops.sum(alpha * alpha, axis=1, keepdims=True), 1e-24))

    def call(self, units, task=None, penalty=True):
        """The mix of every task (a dict), or only of `task` (a tensor) when it is given.

        `penalty=False` skips adding the L1 penalty (a model that calls the layer once
        per task adds it on one call only)."""
        units = list(units)
        if len(units) != self.num_units:
            raise UserError(
                f"LassoMix was built for {self.num_units} inputs. Received {len(units)}."
            )
        if task is not None and task not in self.task_names:
            raise UserError(f"LassoMix has no task {task!r}; tasks: {list(self.task_names)}")
        alpha = self._normalized()
        if self.l1 > 0 and penalty:
            self.add_loss(self.l1 * ops.sum(ops.abs(alpha)))
        stacked = ops.stack(units, axis=0)  # [M, B, ...]
        flat = ops.reshape(stacked, (self.num_units, -1))
        shape = ops.shape(units[0])
        if task is not None:
            row = alpha[list(self.task_names).index(task)][None]
            return ops.reshape(ops.matmul(ops.cast(row, flat.dtype), flat), shape)
        mixed = ops.matmul(ops.cast(alpha, flat.dtype), flat)  # [N, B*...]
        return {name: ops.reshape(mixed[n], shape) for n, name in enumerate(self.task_names)}

    def compute_output_spec(self, units, task=None, penalty=True):
        spec = keras.KerasTensor(units[0].shape, dtype=units[0].dtype)
        if task is not None:
            return spec
        return {
            name: keras.KerasTensor(units[0].shape, dtype=units[0].dtype)
            for name in self.task_names
        }

    def alphas(self):
        """Returns the normalised α (N x M) the forward pass uses, as numpy, rows in task order."""
        if not self.built:
            raise UserError("LassoMix.alphas(): the layer is not built yet (call it first).")
        return keras.ops.convert_to_numpy(self._normalized())

    def get_config(self):
        config = super().get_config()
        config.update(task_names=list(self.task_names), l1=self.l1, init=self.init, seed=self.seed)
        return config
