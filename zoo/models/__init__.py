"""Method models: keras.Model subclasses that own trunk, heads, optimizers and train_step."""

from zoo.models.multitask import MultiTaskModel

__all__ = ["MultiTaskModel"]
