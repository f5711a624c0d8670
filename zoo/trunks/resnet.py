"""ResNet trunks (v1 and v2, depths 9 to 152) that return named endpoints.

A trunk is a functional `keras.Model` mapping images `[B, H, W, 3]` (float RGB in
[0, 1] after harmonization) to a dict of endpoints:

* `stem`: output of the stem (stride 4 for the ImageNet ResNets, 1 for ResNet-9);
* `block1` .. `block4` (up to `stop_at`): output of each stage;
* `blockK/unit_J`: output of every residual unit, e.g. the 23 `block3/unit_*` taps
  of ResNet-101 that Doersch & Zisserman (2017) mix with `zoo.layers.LassoMix`.

Layouts follow the references the papers use:

* version 1 is post-activation (He et al. 2016a) with the stride of a stage in the
  3x3 convolution of its first unit (the "v1.5" placement of modern ports);
* version 2 is pre-activation (He et al. 2016b) as in TF-Slim `resnet_v2`, used by
  Doersch & Zisserman: the stride of a stage sits in its last unit, strided units
  subsample their identity shortcut, and a final norm + ReLU follows block 4, so the
  `block4` endpoint of version 2 is normalised while the endpoints of earlier blocks
  and of units are the raw residual sums (the next unit pre-activates them).

Convolution biases follow `keras.applications` so that parameter counts match
`ResNet{50,101,152}` and `ResNet{50,101,152}V2` exactly: version 1 gives every
convolution a bias; version 2 gives one to the stem, the projection shortcuts and the
last 1x1 convolution of each unit (the ones not followed by a normalisation).

`output_stride` works as in TF-Slim: once the running stride reaches it, later
strides are replaced by atrous (dilated) convolutions with a growing rate, so feature
maps keep their resolution while receptive fields grow as in the undilated network.
"""

import math

import gin
import keras
from keras import layers

from zoo import checks, internals
from zoo.errors import UserError
from zoo.trunks import imagenet

STAGES = ("block1", "block2", "block3", "block4")
NORMS = ("batch", "group", "sync_batch")
BASE_WIDTHS = (64, 128, 256, 512)

# depth -> (unit type, units per stage); ResNet-26 is the bottleneck [2, 2, 2, 2]
# trunk of the DeepLab models that CompL (2022) trains.
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    26: ("bottleneck", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
EXPANSION = {"basic": 1, "bottleneck": 4}

_BN_EPSILON = 1.001e-5  # as keras.applications
_GN_GROUPS = 32  # Wu & He 2018


def _norm(kind, channels, name):
    if kind == "batch":
        return layers.BatchNormalization(epsilon=_BN_EPSILON, name=name)
    if kind == "sync_batch":
        return internals.SyncBatchNormalization(epsilon=_BN_EPSILON, name=name)
    # Narrow (test-size) trunks have fewer channels than 32 groups: use the largest
    # group count that divides the channels.
    groups = math.gcd(_GN_GROUPS, channels)
    return layers.GroupNormalization(groups=groups, epsilon=1e-5, name=name)


def _conv(x, filters, kernel, stride, rate, use_bias, name):
    """Convolution whose output has ceil(H / stride) rows for any H (TF-Slim conv2d_same)."""
    if stride > 1 and kernel > 1:
        pad = (kernel - 1) // 2, kernel // 2
        x = layers.ZeroPadding2D((pad, pad), name=name + "_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        dilation_rate=rate,
        padding=padding,
        use_bias=use_bias,
        name=name,
    )(x)


def _conv_norm(x, filters, kernel, stride, rate, norm, use_bias, name, relu=True):
    x = _conv(x, filters, kernel, stride, rate, use_bias, name + "_conv")
    x = _norm(norm, filters, name + "_norm")(x)
    if relu:
        x = layers.ReLU(name=name + "_relu")(x)
    return x


def _unit_v1(x, kind, width, stride, rates, norm, name, stride_first=False):
    """Post-activation unit; `rates` = (rate of the strided conv, rate after it);
    `stride_first`: the stride in the first 1x1 convolution (keras.applications)."""
    out = width * EXPANSION[kind]
    shortcut = x
    if stride != 1 or x.shape[-1] != out:
        shortcut = _conv_norm(x, out, 1, stride, 1, norm, True, name + "_0", relu=False)
    if kind == "bottleneck":
        first, second = (stride, 1) if stride_first else (1, stride)
        y = _conv_norm(x, width, 1, first, 1, norm, True, name + "_1")
        y = _conv_norm(y, width, 3, second, rates[0], norm, True, name + "_2")
        y = _conv_norm(y, out, 1, 1, 1, norm, True, name + "_3", relu=False)
    else:
        y = _conv_norm(x, width, 3, stride, rates[0], norm, True, name + "_1")
        y = _conv_norm(y, out, 3, 1, rates[1], norm, True, name + "_2", relu=False)
    y = layers.Add(name=name + "_add")([shortcut, y])
    return layers.ReLU(name=name + "_out")(y)


def _unit_v2(x, kind, width, stride, rates, norm, name, stride_first=False):
    """Pre-activation unit (TF-Slim resnet_v2 bottleneck and its basic counterpart)."""
    out = width * EXPANSION[kind]
    preact = _norm(norm, x.shape[-1], name + "_preact_norm")(x)
    preact = layers.ReLU(name=name + "_preact_relu")(preact)
    if x.shape[-1] != out:
        shortcut = _conv(preact, out, 1, stride, 1, True, name + "_0_conv")
    elif stride > 1:
        shortcut = layers.MaxPooling2D(1, strides=stride, name=name + "_0_pool")(x)
    else:
        shortcut = x
    if kind == "bottleneck":
        y = _conv_norm(preact, width, 1, 1, 1, norm, False, name + "_1")
        y = _conv_norm(y, width, 3, stride, rates[0], norm, False, name + "_2")
        y = _conv(y, out, 1, 1, 1, True, name + "_3_conv")
    else:
        y = _conv_norm(preact, width, 3, stride, rates[0], norm, False, name + "_1")
        y = _conv(y, out, 3, 1, rates[1], True, name + "_2_conv")
    return layers.Add(name=name + "_out")([shortcut, y])


class _StrideTracker:
    """TF-Slim's rule: once `output_stride` is reached, strides become dilation rates."""

    def __init__(self, stride, output_stride):
        self.stride = stride
        self.rate = 1
        self.output_stride = output_stride

    def next(self, stride):
        """Returns (stride to apply, rate of the strided conv, rate after it)."""
        if self.output_stride is not None and self.stride == self.output_stride:
            rate_in = self.rate
            self.rate *= stride
            return 1, rate_in, self.rate
        self.stride *= stride
        return stride, 1, 1


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise UserError(f"`{name}` must be one of {list(allowed)}. Received: {name}={value!r}")


def _resolve_widths(widths, width_multiplier, base, num_stages, fn_name):
    if widths is None:
        if not width_multiplier > 0:
            raise UserError(
                f"{fn_name}: `width_multiplier` must be > 0. "
                f"Received: width_multiplier={width_multiplier}"
            )
        return [max(1, int(round(w * width_multiplier))) for w in base]
    widths = list(widths)
    if len(widths) != num_stages or not all(isinstance(w, int) and w > 0 for w in widths):
        raise UserError(
            f"{fn_name}: `widths` must be {num_stages} positive integers, one per stage. "
            f"Received: widths={widths}"
        )
    if width_multiplier != 1.0:
        raise UserError(
            f"{fn_name}: give either `widths` or `width_multiplier`, not both. "
            f"Received: widths={widths}, width_multiplier={width_multiplier}"
        )
    return widths


def _images_input(input_shape):
    """The trunk's input: images of 3 channels, or of any number (CMC's L and ab halves,
    `zoo.trunks.channel_split`)."""
    channels = input_shape[-1] if len(input_shape) == 3 else None
    if not (isinstance(channels, int) and channels >= 1):
        raise UserError(
            f"`input_shape` must be (height, width, channels), usually 3 channels, with "
            f"None for any size. Received: input_shape={input_shape}"
        )
    return keras.Input(shape=input_shape, name="images")


def _endpoint(endpoints, key, tensor):
    """Records an endpoint; a tensor already exposed under another key gets an alias."""
    if any(tensor is t for t in endpoints.values()):
        tensor = layers.Identity(name=key.replace("/", "_"))(tensor)
    endpoints[key] = tensor


@gin.configurable(module="zoo.trunks")
def resnet(
    depth,
    version=2,
    widths=None,
    width_multiplier=1.0,
    output_stride=None,
    norm="batch",
    stop_at="block4",
    input_shape=(None, None, 3),
    name=None,
    layout=None,
    weights=None,
    stem_pool=True,
    stem_kernel=7,
    stem_width=None,
):
    """Builds a ResNet trunk returning a dict of named endpoints.

    Args:
        depth: int. One of 18, 26, 34, 50, 101, 152 (basic units for 18 and 34,
            bottleneck units otherwise).
        version: int. 1 (post-activation) or 2 (pre-activation, TF-Slim resnet_v2).
            Defaults to 2.
        widths: list of 4 ints or None. Per-stage widths: the bottleneck width for
            bottleneck units (the stage outputs 4x this) and the output width for
            basic units; the stem has `widths[0]` channels. Defaults to
            [64, 128, 256, 512] times `width_multiplier`.
        width_multiplier: float. Scales the default widths. Defaults to 1.0.
        output_stride: int or None. 8, 16 or 32: the largest stride of any feature
            map; beyond it, atrous convolutions replace strides. Defaults to None
            (no dilation).
        norm: str. "batch", "group" (GroupNormalization with 32 groups, or the
            largest divisor of the channels below that) or "sync_batch"
            (BatchNormalization synchronised across replicas). Defaults to "batch".
        stop_at: str. Last stage built, "block1" .. "block4". Defaults to "block4".
        input_shape: tuple. (height, width, 3); None for any size.
            Defaults to (None, None, 3).
        name: str or None. Model name. Defaults to "resnet{depth}_v{version}".
        layout: str or None. "slim" (TF-Slim; version 1 strides the 3x3 convolution, the
            stem max-pools with "same" padding) or "keras" (keras.applications: version 1
            strides the first 1x1 convolution, the stem max-pools a zero-padded map).
            Defaults to "keras" with `weights`, else "slim".
        weights: None, "imagenet", a keras.applications ResNet50/101/152(V2) model or
            the path of its weights file. Copies those weights into the trunk of the same
            depth and version (`zoo.trunks.imagenet`): the trunk then starts with that
            model's input preprocessing, so it still takes RGB in [0, 1] and its
            `block4` equals the Keras model's output. "imagenet" reads the file Keras
            keeps in ~/.keras/models (nothing is downloaded). Defaults to None.
        stem_pool: bool. The stem's 3x3 stride-2 max-pool; without it every map is
            twice as large (Newell & Deng's ResNet-50 "with reduced pooling", their
            code's `skip_init_pool`: stride 16 at the end). Defaults to True.
        stem_kernel: int. The stem convolution's size (odd). Defaults to 7; MGM's code
            uses 5.
        stem_width: int or None. The stem's channels. Defaults to `widths[0]`; MGM's
            code has 64 before stages of [48, 96, 192, 360].

    Returns:
        A functional `keras.Model` whose output is a dict of endpoints.

    Example:

    >>> trunk = resnet(101, version=2, stop_at="block3", output_stride=8)
    >>> endpoints = trunk(images)  # endpoints["block3/unit_23"]: [B, H/8, W/8, 1024]
    """
    fn = f"resnet(depth={depth})"
    _check_choice("depth", depth, DEPTHS)
    _check_choice("version", version, (1, 2))
    _check_choice("output_stride", output_stride, (None, 8, 16, 32))
    _check_choice("norm", norm, NORMS)
    _check_choice("stop_at", stop_at, STAGES)
    layout = layout or ("keras" if weights is not None else "slim")
    _check_choice("layout", layout, ("slim", "keras"))
    checks.int_at_least(stem_kernel, 1, "stem_kernel", fn)
    if stem_kernel % 2 == 0:
        raise UserError(f"{fn}: `stem_kernel` must be odd. Received: {stem_kernel}")
    checks.int_at_least(stem_width, 1, "stem_width", fn, none=True)
    if weights is not None:
        imagenet.check_trunk(depth, version, widths, width_multiplier, norm, layout)
        if (stem_kernel, stem_width) != (7, None):
            raise UserError(f"{fn}: ImageNet weights belong to a trunk with a 7x7 stem.")
        if not stem_pool:
            raise UserError(f"{fn}: ImageNet weights belong to a trunk with its stem's max-pool.")
    kind, units = DEPTHS[depth]
    widths = _resolve_widths(widths, width_multiplier, BASE_WIDTHS, len(STAGES), fn)
    images = _images_input(input_shape)
    x = images
    if weights is not None:
        x = imagenet.Preprocessing(version, name="imagenet_preprocessing")(x)
    stem = _stem(x, version, stem_width or widths[0], norm, layout, stem_pool, stem_kernel)
    endpoints = {"stem": stem}
    stages = _Stages(kind, units, widths, version, norm, layout)
    stages.build(
        endpoints, STAGES[: STAGES.index(stop_at) + 1], output_stride, fn, 4 if stem_pool else 2
    )
    trunk = keras.Model(images, endpoints, name=name or f"resnet{depth}_v{version}")
    if weights is not None:
        imagenet.load_weights(trunk, weights, depth, version)
    return trunk


def _stem(x, version, width, norm, layout, pool=True, kernel=7):
    """The 7x7 (`kernel`) stride-2 convolution (v1: normalized and rectified) and the
    3x3 stride-2 max-pool, as `layout` pads it (none without `pool`)."""
    x = _conv(x, width, kernel, 2, 1, True, "stem_conv")
    if version == 1:
        x = _norm(norm, width, "stem_norm")(x)
        x = layers.ReLU(name="stem_relu")(x)
    if not pool:
        return x
    if layout == "keras":
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        return layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    return layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)


class _Stages:
    """The residual stages of a ResNet of one kind, version, norm and layout."""

    def __init__(self, kind, units, widths, version, norm, layout):
        self.kind, self.units, self.widths = kind, units, widths
        self.version, self.norm, self.layout = version, norm, layout
        # v1 strides the first unit of stages 2-4; v2 the last unit of stages 1-3.
        self.strides = (1, 2, 2, 2) if version == 1 else (2, 2, 2, 1)

    def build(self, endpoints, stages, output_stride, fn, stem_stride=4):
        """Adds every unit and stage of `stages` to `endpoints` (after "stem", at
        `stem_stride`), dilating instead of striding beyond `output_stride`."""
        x = endpoints["stem"]
        tracker = _StrideTracker(stem_stride, output_stride)
        unit_fn = _unit_v1 if self.version == 1 else _unit_v2
        for s, stage in enumerate(stages):
            count = self.units[s]
            for j in range(count):
                first, last = j == 0, j == count - 1
                nominal = self.strides[s] if (first if self.version == 1 else last) else 1
                stride, rate_in, rate_out = tracker.next(nominal)
                x = unit_fn(
                    x,
                    self.kind,
                    self.widths[s],
                    stride,
                    (rate_in, rate_out),
                    self.norm,
                    f"{stage}_unit_{j + 1}",
                    stride_first=self.layout == "keras",
                )
                endpoints[f"{stage}/unit_{j + 1}"] = x
            if self.version == 2 and stage == "block4":
                x = _norm(self.norm, x.shape[-1], "postnorm")(x)
                x = layers.ReLU(name="postnorm_relu")(x)
            _endpoint(endpoints, stage, x)
        if output_stride is not None and tracker.stride != output_stride:
            raise UserError(
                f"{fn}: output_stride={output_stride} is larger than the stride "
                f"{tracker.stride} this trunk reaches at stop_at={stages[-1]!r} (version "
                f"{self.version}); use output_stride=None or a value up to {tracker.stride}."
            )


RESNET9_WIDTHS = (64, 128, 256, 512)
RESNET9_STAGES = ("block1", "block2", "block3")


@gin.configurable(module="zoo.trunks")
def resnet9(
    widths=None,
    width_multiplier=1.0,
    inner_widths=None,
    output_stride=None,
    norm="batch",
    stop_at="block3",
    input_shape=(None, None, 3),
    name="resnet9",
):
    """Builds ResNet-9 of "How to train your ResNet" (Page 2018), Newell & Deng's small model.

    prep: conv 3x3 (widths[0]) -> `stem` at stride 1;
    block1: conv 3x3 (widths[1]) + max-pool 2, then a residual unit of two convs;
    block2: conv 3x3 (widths[2]) + max-pool 2;
    block3: conv 3x3 (widths[3]) + max-pool 2, then a residual unit of two convs.
    Every conv is followed by a norm and a ReLU; the residual sums are not activated.

    Args:
        widths: list of 4 ints or None. Widths of prep, block1, block2, block3.
            Defaults to [64, 128, 256, 512] times `width_multiplier`.
        width_multiplier: float. Scales the default widths. Defaults to 1.0.
        inner_widths: pair of ints or None. Widths of the first convolution of block1's
            and block3's residual units (the second keeps the block's width, which the
            sum needs). Newell & Deng's "half" ResNet-9 of CMC halves these and block2,
            keeping the rest: widths [64, 128, 128, 512], inner_widths (64, 256).
            Defaults to None: the blocks' widths.
        output_stride: int or None. 2, 4 or 8: pooling stops once this stride is
            reached and later convolutions are dilated instead. Newell & Deng
            reduce pooling so that dense tasks are supervised at 16x16 from 64x64
            images (output_stride=4). Defaults to None (stride 8).
        norm: str. "batch", "group" or "sync_batch". Defaults to "batch".
        stop_at: str. Last stage built, "block1" .. "block3". Defaults to "block3".
        input_shape: tuple. (height, width, 3). Defaults to (None, None, 3).
        name: str. Model name. Defaults to "resnet9".

    Returns:
        A functional `keras.Model` whose output is a dict of endpoints: `stem`,
        `block1` .. `stop_at`, `block1/unit_1` and `block3/unit_1`.
    """
    fn = "resnet9"
    _check_choice("output_stride", output_stride, (None, 2, 4, 8))
    _check_choice("norm", norm, NORMS)
    _check_choice("stop_at", stop_at, RESNET9_STAGES)
    widths = _resolve_widths(widths, width_multiplier, RESNET9_WIDTHS, 4, fn)
    inner = {"block1": widths[1], "block3": widths[3]}
    if inner_widths is not None:
        if not (
            isinstance(inner_widths, (tuple, list))
            and len(inner_widths) == 2
            and all(isinstance(w, int) and w >= 1 for w in inner_widths)
        ):
            raise UserError(
                f"{fn}: `inner_widths` must be two ints >= 1 (block1's and block3's "
                f"residual units) or None. Received: {inner_widths!r}"
            )
        inner = dict(zip(("block1", "block3"), inner_widths))

    images = _images_input(input_shape)
    endpoints = {}
    x = _conv_norm(images, widths[0], 3, 1, 1, norm, False, "stem")
    endpoints["stem"] = x
    tracker = _StrideTracker(1, output_stride)
    for s, stage in enumerate(RESNET9_STAGES[: RESNET9_STAGES.index(stop_at) + 1]):
        stride, rate, rate_out = tracker.next(2)
        x = _conv_norm(x, widths[s + 1], 3, 1, rate, norm, False, stage)
        if stride > 1:
            x = layers.MaxPooling2D(2, name=f"{stage}_pool")(x)
        if stage in ("block1", "block3"):
            y = _conv_norm(x, inner[stage], 3, 1, rate_out, norm, False, f"{stage}_unit_1_1")
            y = _conv_norm(y, widths[s + 1], 3, 1, rate_out, norm, False, f"{stage}_unit_1_2")
            x = layers.Add(name=f"{stage}_unit_1_out")([x, y])
            endpoints[f"{stage}/unit_1"] = x
        _endpoint(endpoints, stage, x)
    if output_stride is not None and tracker.stride != output_stride:
        raise UserError(
            f"{fn}: output_stride={output_stride} is larger than the stride "
            f"{tracker.stride} reached at stop_at={stop_at!r}; use a value up to {tracker.stride}."
        )
    return keras.Model(images, endpoints, name=name)


def refinement_network(
    prediction_shapes,
    num_classes,
    widths=(48, 96, 192),
    units=(3, 4, 3),
    stem_width=64,
    stem_kernel=5,
    hidden=128,
    relu_logits=False,
    norm="batch",
    name="refinement",
):
    """MGM's refinement network R: the scene class from a multi-task network's
    predictions (one small ResNet per predicted map, MGM App. A; the code's layout).

    Each map goes through its own ResNet: a `stem_kernel` stride-2 convolution of
    `stem_width` channels with BatchNorm and ReLU, a 3x3 stride-2 max-pool, stages of
    basic post-activation units (`units` of them at `widths`, every stage's first unit
    strided 2), and a global max-pool. The pooled features are concatenated, then
    Dense(`hidden`) -> ReLU -> Dense(`num_classes`).

    Args:
        prediction_shapes: {name: (height, width, channels)}. The predicted maps, e.g.
            {"semantic_segmentation": (128, 128, 40), "depth": (128, 128, 1),
            "normals": (128, 128, 3)} (segmentation's logits, raw depth and normals, as
            the code feeds them).
        num_classes: int >= 2. Scene classes.
        widths, units: sequences of ints of one length. Defaults to the code's
            (48, 96, 192) and (3, 4, 3); the paper calls each a ResNet-10.
        stem_width, stem_kernel: ints. Defaults to 64 and 5 (the code's).
        hidden: int. Defaults to 128.
        relu_logits: bool. The code rectifies the logits before the cross entropy;
            the paper does not say so. Defaults to False.
        norm: str. As `resnet`'s. Defaults to "batch".
        name: str.

    Returns:
        A `keras.Model` from {name: [B, H, W, C]} to logits [B, num_classes].
    """
    fn = "refinement_network"
    if not isinstance(prediction_shapes, dict) or not prediction_shapes:
        raise UserError(
            f"{fn}: `prediction_shapes` must be a non-empty dict {{name: (H, W, C)}}. "
            f"Received: {prediction_shapes!r}"
        )
    checks.int_at_least(num_classes, 2, "num_classes", fn)
    if len(widths) != len(units) or not widths:
        raise UserError(
            f"{fn}: `widths` and `units` must have one length >= 1. Received: {widths}, {units}"
        )
    _check_choice("norm", norm, NORMS)
    inputs, pooled = {}, []
    for key, shape in prediction_shapes.items():
        prefix = f"{name}_{key}"
        inputs[key] = keras.Input(tuple(shape), name=key)
        x = _conv_norm(inputs[key], stem_width, stem_kernel, 2, 1, norm, False, f"{prefix}_stem")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{prefix}_stem_pool")(x)
        for s, (width, count) in enumerate(zip(widths, units)):
            for j in range(count):
                stride = 2 if j == 0 else 1
                x = _unit_v1(
                    x, "basic", width, stride, (1, 1), norm, f"{prefix}_block{s + 1}_{j + 1}"
                )
        pooled.append(layers.GlobalMaxPooling2D(name=f"{prefix}_pool")(x))
    x = pooled[0] if len(pooled) == 1 else layers.Concatenate(name=f"{name}_concat")(pooled)
    x = layers.Dense(hidden, activation="relu", name=f"{name}_hidden")(x)
    logits = layers.Dense(num_classes, name=f"{name}_logits")(x)
    if relu_logits:
        logits = layers.ReLU(name=f"{name}_relu_logits")(logits)
    return keras.Model(inputs, logits, name=name)
