"""Everything a gin file can name, registered in one place: the zoo's configurables
(imported here: each module registers its own) and Keras' optimizers, learning-rate
schedules and callbacks, as `@keras.optimizers.RMSprop()`,
`@keras.optimizers.schedules.CosineDecay()`, `@keras.callbacks.EarlyStopping()`.

The binaries import it before they parse gin files (`zoo.cli.gin_setup`). A program
that parses gin files itself imports it first:

    import zoo.configurables  # noqa: F401
    gin.parse_config_file("my_experiment.gin")
    zoo.experiment.train(model_dir)
"""

import gin
import keras

# the modules that register configurables
import zoo.data.augment  # noqa: F401
import zoo.data.sources  # noqa: F401
import zoo.data.synthetic.scene  # noqa: F401
import zoo.evaluation.knn  # noqa: F401
import zoo.evaluation.protocols  # noqa: F401
import zoo.evaluation.sweep  # noqa: F401
import zoo.evaluation.transfer  # noqa: F401
import zoo.experiment  # noqa: F401
import zoo.methods  # noqa: F401
import zoo.optimizers  # noqa: F401
import zoo.tasks  # noqa: F401
import zoo.trunks  # noqa: F401

# Keras optimizers and schedules are gin objects: `@keras.optimizers.RMSprop()`.
for _cls in (
    keras.optimizers.Adam,
    keras.optimizers.AdamW,
    keras.optimizers.SGD,
    keras.optimizers.RMSprop,
    keras.optimizers.Adagrad,
    keras.optimizers.Nadam,
    keras.optimizers.Lion,
    keras.optimizers.Lamb,
):
    gin.external_configurable(_cls, module="keras.optimizers")
for _cls in (
    keras.optimizers.schedules.CosineDecay,
    keras.optimizers.schedules.CosineDecayRestarts,
    keras.optimizers.schedules.ExponentialDecay,
    keras.optimizers.schedules.PiecewiseConstantDecay,
    keras.optimizers.schedules.PolynomialDecay,
    keras.optimizers.schedules.InverseTimeDecay,
):
    gin.external_configurable(_cls, module="keras.optimizers.schedules")
for _cls in (
    keras.callbacks.EarlyStopping,
    keras.callbacks.ReduceLROnPlateau,
    keras.callbacks.TerminateOnNaN,
):
    gin.external_configurable(_cls, module="keras.callbacks")
