"""Gin configurations of the multi-worker tests: tiny runs of every kind of method whose
one-process and multi-worker steps must agree (statistics over the global batch:
"sync_batch" trunks and synchronized head BatchNorm; plain SGD, whose steps do not turn
rounding noise into full-size updates as Adam's normalised steps do)."""

COMMON = """
import zoo.data
import zoo.data.augment
import zoo.data.synthetic
import zoo.experiment
import zoo.methods
import zoo.tasks
import zoo.trunks
zoo.layers.batch_norm.synchronized = True
zoo.experiment.train.optimizer = @keras.optimizers.SGD()
keras.optimizers.SGD.learning_rate = 0.001
zoo.experiment.train.batch_size = 4
zoo.experiment.train.epochs = 1
zoo.experiment.train.steps_per_epoch = 2
zoo.experiment.train.verbose = 0
"""

SCENES = """
SCENES = @scenes/zoo.data.synthetic.SceneSpec()
scenes/zoo.data.synthetic.SceneSpec.variant = "----"
scenes/zoo.data.synthetic.SceneSpec.mode = "multi"
scenes/zoo.data.synthetic.SceneSpec.resolution = %SIZE
"""

MULTITASK = (
    COMMON
    + SCENES
    + """
SIZE = 32
zoo.trunks.resnet.depth = 18
zoo.trunks.resnet.width_multiplier = 0.0625
zoo.trunks.resnet.output_stride = 8
zoo.trunks.resnet.stop_at = "block2"
zoo.trunks.resnet.norm = "sync_batch"
zoo.tasks.Depth.source = %SCENES
zoo.tasks.Depth.num_examples = 16
zoo.tasks.Depth.eval_examples = 4
zoo.tasks.Depth.head_width = 8
zoo.tasks.Rotation.source = %SCENES
zoo.tasks.Rotation.num_examples = 16
zoo.tasks.Rotation.eval_examples = 4
zoo.methods.MultiTask.trunk = @zoo.trunks.resnet
zoo.methods.MultiTask.tasks = [@zoo.tasks.Depth(), @zoo.tasks.Rotation()]
zoo.methods.MultiTask.input_size = %SIZE
zoo.experiment.train.method = @zoo.methods.MultiTask
"""
)

DOMAIN_ADVERSARIAL = (
    COMMON
    + SCENES
    + """
SIZE = 67
zoo.trunks.alexnet.width_multiplier = 0.0625
zoo.trunks.alexnet.norm = "sync_batch"
zoo.tasks.Depth.source = %SCENES
zoo.tasks.Depth.num_examples = 16
zoo.tasks.Depth.eval_examples = 4
zoo.tasks.Depth.head_width = 8
zoo.methods.DomainAdversarial.trunk = @zoo.trunks.alexnet
zoo.methods.DomainAdversarial.tasks = [@zoo.tasks.Depth()]
zoo.methods.DomainAdversarial.input_size = %SIZE
zoo.methods.DomainAdversarial.real = @zoo.data.real_photos()
zoo.methods.DomainAdversarial.discriminator_widths = (8, 8, 8)
zoo.data.real_photos.part = "train"
zoo.data.real_photos.crop = %SIZE
zoo.data.real_photos.size = 96
zoo.data.real_photos.crops_per_image = 2
zoo.experiment.train.method = @zoo.methods.DomainAdversarial
"""
)

OBJECTS = """
IMAGES = @objects/zoo.data.synthetic.SceneSpec()
objects/zoo.data.synthetic.SceneSpec.variant = "-C--"
objects/zoo.data.synthetic.SceneSpec.mode = "single"
objects/zoo.data.synthetic.SceneSpec.resolution = %SIZE
VIEWS = @zoo.data.augment.Views()
zoo.data.augment.Views.crop = @zoo.data.augment.RandomResizedCrop()
zoo.data.augment.RandomResizedCrop.size = %SIZE
zoo.data.augment.RandomResizedCrop.scale = (0.5, 1.0)
zoo.data.augment.Views.steps = [@zoo.data.augment.HorizontalFlip()]
"""


def _two_view(task):
    """One small two-view task `task` (zoo.tasks.<task>) on the OBJECTS' views."""
    return f"""
zoo.tasks.{task}.source = %IMAGES
zoo.tasks.{task}.views = %VIEWS
zoo.tasks.{task}.num_examples = 16
zoo.tasks.{task}.eval_examples = 4
zoo.tasks.{task}.hidden = 16
zoo.tasks.{task}.projection = 8
"""


_QUEUE = "zoo.tasks.MoCo.queue_size = 8\nzoo.tasks.MoCo.momentum = 0.9\n"

MOCO = (
    COMMON
    + OBJECTS
    + _two_view("MoCo")
    + _QUEUE
    + """
SIZE = 32
zoo.trunks.resnet9.width_multiplier = 0.125
zoo.trunks.resnet9.norm = "sync_batch"
zoo.methods.MultiTask.trunk = @zoo.trunks.resnet9
zoo.methods.MultiTask.input_size = %SIZE
zoo.methods.MultiTask.tasks = [@zoo.tasks.MoCo()]
zoo.experiment.train.method = @zoo.methods.MultiTask
"""
)

# MULTITASK's depth beside MoCo (key network and queue updated after the step:
# `after_step`) and SimCLR (NT-Xent over the batch gathered from every replica), in
# three input groups: one run covers the three kinds of step.
CONTRASTIVE_BESIDE_DEPTH = (
    MULTITASK
    + OBJECTS
    + _two_view("MoCo")
    + _QUEUE
    + _two_view("SimCLR")
    + "zoo.methods.MultiTask.tasks = [@zoo.tasks.Depth(), @zoo.tasks.MoCo(), @zoo.tasks.SimCLR()]\n"
)

CONFIGS = {
    "depth_moco_simclr": CONTRASTIVE_BESIDE_DEPTH,
    "domain_adversarial": DOMAIN_ADVERSARIAL,
}
