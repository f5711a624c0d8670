"""Methods: keras.Model subclasses that own their networks, players and train_step."""

from zoo.methods.base import Method, Phase
from zoo.methods.domain_adaptation import DomainAdversarial
from zoo.methods.mgm import MGM
from zoo.methods.multitask import MultiTask
from zoo.methods.shared_trunk import SharedTrunk
from zoo.methods.transfer import Transfer

__all__ = ["DomainAdversarial", "MGM", "Method", "MultiTask", "Phase", "SharedTrunk", "Transfer"]
