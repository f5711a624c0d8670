"""The papers' claims as data, judged on the zoo's own runs.

A `Claim` is one statement of a paper that the zoo can test at CPU scale: where the
paper makes it, the paper's numbers, the two arms it compares (each a set of per-seed
values read from a results file that the claim's commands write), and the rule that
judges it. `zoo-evaluate claims` reads (or, with --run, makes) the runs, prints the
paper's and the zoo's numbers side by side with the verdict, and writes one results
page per paper (`docs/results/<paper>.md`).

The verdict of "the better arm beats the worse one":

* **holds**: the difference of the means favours the better arm by more than two
  standard errors of the difference (sqrt(s1²/n1 + s2²/n2), sample standard deviations
  over seeds);
* **reversed**: it favours the other arm by more than two standard errors;
* **unresolved**: anything else, including an arm with fewer than two seeds (no spread
  to judge a difference by);
* **no runs**: an arm has no values yet; the page gives the commands that make them.

Each paper registers its claims in `PAPERS`; a paper still to build has an entry with
no claims, so the pages say so rather than leave it out.
"""

import dataclasses
import json
import math
import os
import shlex
import subprocess
import sys

from zoo.errors import UserError
from zoo.evaluation import adaptation, compl, sweep
from zoo.evaluation import results as pages

# -- what a claim is ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arm:
    """One side of a claim: per-seed values of `value` in the records of `file` (a JSON
    Lines file under the claims folder) whose fields equal `where`.

    With `minus`, the arm is the seed-wise difference `self - minus` (e.g. pretrained
    minus scratch at the same n: an advantage), over the seeds both have.
    """

    label: str
    file: str
    where: dict
    value: str = "value"
    minus: "Arm | None" = None

    def values(self, root: str) -> dict:
        """{seed: value} found under `root`."""
        found = {}
        for record in _records(os.path.join(root, self.file)):
            if all(record.get(k) == v for k, v in self.where.items()):
                value = record.get(self.value)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    found[record.get("seed", 0)] = float(value)
        if self.minus is not None:
            other = self.minus.values(root)
            found = {s: v - other[s] for s, v in found.items() if s in other}
        return found


@dataclasses.dataclass(frozen=True)
class UtilityArm:
    """One side of a claim: per-seed utilities (`zoo.evaluation.utility`) of `method` in
    the label-count sweep whose results are `file` (a results.jsonl under the claims
    folder), each cell against the sweep's mean scratch curve: at `n`, or (n=None) the
    mean over the n where the utility is defined."""

    label: str
    file: str
    method: str
    n: "int | None" = None

    def values(self, root: str) -> dict:
        """{seed: utility} found under `root`."""
        folder = os.path.dirname(os.path.join(root, self.file))
        return sweep.seed_utilities(folder, self.method, self.n)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A paper's statement that arm `better` beats arm `worse` on `metric`."""

    name: str
    paper: str
    where: str
    statement: str
    paper_numbers: str
    metric: str
    better: "Arm | UtilityArm"
    worse: "Arm | UtilityArm"
    commands: tuple
    higher_is_better: bool = True

    @property
    def id(self) -> str:
        return f"{self.paper}/{self.name}"


@dataclasses.dataclass(frozen=True)
class Paper:
    key: str
    title: str
    status: str
    claims: tuple = ()


@dataclasses.dataclass(frozen=True)
class Verdict:
    verdict: str
    better: tuple  # (mean, std, seeds)
    worse: tuple
    difference: float = math.nan
    error: float = math.nan


def judge(better, worse, higher_is_better: bool = True) -> Verdict:
    """The verdict of "better beats worse" from their per-seed values (module docstring)."""
    b, w = pages.mean_std(better), pages.mean_std(worse)
    if b[2] == 0 or w[2] == 0:
        return Verdict("no runs", b, w)
    difference = (b[0] - w[0]) * (1 if higher_is_better else -1)
    if b[2] < 2 or w[2] < 2:
        return Verdict("unresolved", b, w, difference)
    error = math.sqrt(b[1] ** 2 / b[2] + w[1] ** 2 / w[2])
    if difference > 2 * error and difference > 0:
        verdict = "holds"
    elif difference < -2 * error and difference < 0:
        verdict = "reversed"
    else:
        verdict = "unresolved"
    return Verdict(verdict, b, w, difference, error)


def _records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# -- the registry -----------------------------------------------------------------------

_RL = "ren_lee18/results.jsonl"
_RL_RUN = (
    "zoo-evaluate adaptation --out={root}/ren_lee18 "
    "--rows=3tasks,da_conv1,da_conv5,da_conv6,da_conv5_bifool --seeds=0,1,2",
)
_RL_METRIC = "P classification accuracy (finetuned on 500 labels, from conv7)"


def _rl_arm(row, label, value="p_classification"):
    return Arm(label, _RL, {"row": row}, value)


def _rl(name, statement, better, worse, numbers, where="Table 3, sec. 4.4"):
    return Claim(
        name,
        "ren_lee18",
        where,
        statement,
        numbers,
        _RL_METRIC,
        _rl_arm(*better),
        _rl_arm(*worse),
        _RL_RUN,
    )


REN_LEE18 = (
    _rl(
        "conv5_beats_none",
        "adaptation at a mid layer (conv5) beats no adaptation",
        ("da_conv5", "DA conv5"),
        ("3tasks", "no DA"),
        "VOC07-CLS 67.4 vs 65.6; 07-DET 52.0 vs 51.3; 12-DET 49.2 vs 47.2",
    ),
    _rl(
        "none_beats_conv1",
        "no adaptation beats adaptation at conv1",
        ("3tasks", "no DA"),
        ("da_conv1", "DA conv1"),
        "VOC07-CLS 65.6 vs 61.9; 07-DET 51.3 vs 48.7; 12-DET 47.2 vs 46.0",
    ),
    _rl(
        "conv5_beats_conv6",
        "adaptation at conv5 beats adaptation at conv6",
        ("da_conv5", "DA conv5"),
        ("da_conv6", "DA conv6"),
        "VOC07-CLS 67.4 vs 66.9; 07-DET 52.0 vs 51.5; 12-DET 49.2 vs 48.2",
    ),
    _rl(
        "one_way_beats_bifool",
        "pushing only synthetic features to look real beats pushing both ways (bi-fool)",
        ("da_conv5", "DA conv5"),
        ("da_conv5_bifool", "DA conv5, bi-fool"),
        "VOC07-CLS 67.4 vs 66.2; 07-DET 52.0 vs 51.3; 12-DET 49.2 vs 48.5",
    ),
    Claim(
        "conv5_narrows_the_gap",
        "ren_lee18",
        "sec. 3.3, Fig. 3",
        "adaptation at conv5 makes synthetic and real conv5 features harder to tell apart",
        "no number: Fig. 3 shows nearest neighbours of real images among synthetic ones",
        "domain gap at conv5 (held-out accuracy of a synthetic-vs-real classifier; 0.5 = none)",
        _rl_arm("da_conv5", "DA conv5", "gap_adapted"),
        _rl_arm("3tasks", "no DA", "gap_adapted"),
        _RL_RUN,
        higher_is_better=False,
    ),
)

_NW = "newell20/sweeps/{task}/{variant}/results.jsonl"
_NW_LINEAR = "newell20/linear/results.jsonl"
_NW_FROZEN = "newell20/frozen/results.jsonl"
_NW_RUN = (
    "zoo-evaluate newell20 --out={root}/newell20 --methods=rotation,vae,cmc,amdim "
    "--variants=TCVL --tasks=classification,pose,segmentation,depth --counts=100,250,1000 "
    "--seeds=0,1 --num_labels=4096 "
    '--transfer_bindings="zoo.evaluation.transfer.augment = None" '
    '--transfer_bindings="zoo.evaluation.transfer.dense_augment = None"',
)
# Fig. 6 needs the second variant, which the grid's second command adds
_NW_FIG6_RUN = (
    *_NW_RUN,
    "zoo-evaluate newell20 --out={root}/newell20 --methods=rotation,vae,cmc,amdim "
    "--variants=TCVL,-CVL --tasks=classification --counts=100,250,1000 "
    "--seeds=0,1 --num_labels=4096 "
    '--transfer_bindings="zoo.evaluation.transfer.augment = None" '
    '--transfer_bindings="zoo.evaluation.transfer.dense_augment = None"',
)
_NW_NAMES = dict(rotation="rotation", vae="VAE", cmc="CMC", amdim="AMDIM", scratch="scratch")
_NW_TASKS = {
    "classification": "object classification accuracy",
    "pose": "pose accuracy",
    "segmentation": "segmentation pixel accuracy",
    "depth": "depth δ1",
}
_NW_SCALE = (
    "of a ResNet-9 at half width pretrained by small.gin (800 steps), finetuned on n labelled "
    "TCVL images (64 px; segmentation and depth: scenes, from scene-pretrained runs), the "
    "same steps for scratch, without the paper's finetuning augmentation "
    "(docs/papers/newell20.md says why)"
)
# Fig. 5 (sec. 8): the best method with few labels, per task (the grid's report judges
# it too: zoo.evaluation.newell20)
NEWELL20_BEST = {
    "classification": "cmc",
    "pose": "cmc",
    "segmentation": "rotation",
    "depth": "amdim",
}


# Table 1 (ResNet-9, linear layer on all labels, object classification accuracy in %)
NEWELL20_TABLE_1 = {
    "----": {"supervised": 98.5, "amdim": 96.9, "cmc": 88.7, "rotation": 31.4, "vae": 71.7},
    "-C--": {"supervised": 96.2, "amdim": 94.9, "cmc": 88.9, "rotation": 30.0, "vae": 63.8},
    "-C-L": {"supervised": 93.8, "amdim": 89.8, "cmc": 87.5, "rotation": 39.7, "vae": 51.0},
    "-CVL": {"supervised": 92.1, "amdim": 77.4, "cmc": 72.5, "rotation": 30.6, "vae": 35.7},
    "T---": {"supervised": 97.4, "amdim": 92.5, "cmc": 91.3, "rotation": 32.2, "vae": 72.8},
    "T-VL": {"supervised": 91.8, "amdim": 73.0, "cmc": 69.9, "rotation": 37.6, "vae": 26.9},
    "TC--": {"supervised": 95.3, "amdim": 80.4, "cmc": 90.8, "rotation": 25.4, "vae": 36.8},
    "TCVL": {"supervised": 91.5, "amdim": 74.5, "cmc": 69.0, "rotation": 32.9, "vae": 31.5},
}
_NW_TCVL = NEWELL20_TABLE_1["TCVL"]
# Fig. 6 (sec. 8): the sign of the change in a method's utility when a factor is added
# (CMC: colour and texture raise it, viewpoint lowers it; AMDIM the opposite for texture
# and viewpoint; VAE: every factor lowers it); the paper says nothing of rotation's
NEWELL20_FACTORS = {
    "cmc": {"C": 1, "T": 1, "V": -1},
    "amdim": {"T": -1, "V": 1},
    "vae": {"T": -1, "C": -1, "V": -1, "L": -1},
}


def _nw(method, n, task="classification"):
    where = {"method": method, "n": n}
    return Arm(f"{_NW_NAMES[method]}, n={n}", _NW.format(task=task, variant="TCVL"), where)


def _nw_advantage(method, n):
    label = f"{_NW_NAMES[method]} − scratch, n={n}"
    return dataclasses.replace(_nw(method, n), label=label, minus=_nw("scratch", n))


def _nw_linear(method):
    name = _NW_NAMES.get(method, method)
    return Arm(f"{name}, linear", _NW_LINEAR, {"method": method, "variant": "TCVL"})


def _nw_claim(name, where, statement, numbers, metric, better, worse, commands=_NW_RUN):
    return Claim(name, "newell20", where, statement, numbers, metric, better, worse, commands)


def _nw_texture_claim(method, sign):
    """Fig. 6: adding texture (-CVL → TCVL) changes `method`'s utility by `sign`."""
    arms = [
        UtilityArm(
            f"{_NW_NAMES[method]}, {v}", _NW.format(task="classification", variant=v), method
        )
        for v in ("TCVL", "-CVL")
    ]
    words = "raises" if sign > 0 else "lowers"
    return _nw_claim(
        f"texture_{words}_{method}_utility",
        "Fig. 6, sec. 8",
        f"adding texture (-CVL → TCVL) {words} {_NW_NAMES[method]}'s utility",
        "no table: Fig. 6 shows the change in utility across dataset pairs that differ in "
        "one factor",
        _NW_FIG6_METRIC,
        *(arms if sign > 0 else arms[::-1]),
        commands=_NW_FIG6_RUN,
    )


_NW_FIG4 = "no table: Fig. 4 shows utility > 0 at small n for every method on every variant"
_NW_LINEAR_METRIC = (
    "object classification accuracy of a linear layer on the frozen trunk, trained on 4096 "
    "TCVL objects without augmentation (the supervised arm: the same ResNet-9 trained from "
    "scratch on them)"
)
_NW_FIG6_METRIC = (
    "utility U = n̂/n − 1 against scratch on the same variant, per seed the mean over n = 100, "
    "250 and 1000 where it is defined, of object classification accuracy of a ResNet-9 at "
    "half width pretrained by small.gin (800 steps) on TCVL or -CVL objects and finetuned "
    "on n of them (64 px), without the paper's finetuning augmentation"
)
_NW_FROZEN_METRIC = (
    "object classification accuracy on n = 1000 TCVL objects, finetuned whole or with the stem "
    "and the first three blocks frozen"
)

NEWELL20 = (
    *(
        _nw_claim(
            f"{m}_helps_with_few_labels",
            "Fig. 4, sec. 8",
            f"{_NW_NAMES[m]} pretraining finetunes better than scratch with few labels",
            _NW_FIG4,
            f"{_NW_TASKS['classification']} {_NW_SCALE}",
            _nw(m, 100),
            _nw("scratch", 100),
        )
        for m in ("rotation", "vae", "cmc", "amdim")
    ),
    *(
        _nw_claim(
            f"{m}_advantage_shrinks",
            "Fig. 4, sec. 8",
            f"{_NW_NAMES[m]}'s advantage over scratch shrinks as labels grow (n = 100 against "
            "n = 1000)",
            "no table: Fig. 4 shows utility falling towards 0 as n grows",
            f"{_NW_TASKS['classification']} of the method minus scratch's at the same n and "
            f"seed, {_NW_SCALE}",
            _nw_advantage(m, 100),
            _nw_advantage(m, 1000),
        )
        for m in ("rotation", "vae", "cmc", "amdim")
    ),
    *(
        _nw_claim(
            f"{best}_best_for_{task}_over_{m}",
            "Fig. 5, sec. 8",
            f"{_NW_NAMES[best]} finetunes {task} better than {_NW_NAMES[m]} with few labels",
            f"no table: Fig. 5 puts {_NW_NAMES[best]} first for {task} on TCVL",
            f"{_NW_TASKS[task]} {_NW_SCALE}",
            _nw(best, 100, task),
            _nw(m, 100, task),
        )
        for task, best in NEWELL20_BEST.items()
        for m in ("rotation", "vae", "cmc", "amdim")
        if m != best
    ),
    *(
        _nw_claim(
            f"linear_{better}_over_{worse}",
            "Table 1",
            f"linear evaluation on TCVL: {_NW_NAMES.get(better, better)} above "
            f"{_NW_NAMES.get(worse, worse)}",
            f"TCVL: {_NW_TCVL[better]} vs {_NW_TCVL[worse]}"
            + (" (the best self-supervised method)" if better == "supervised" else ""),
            _NW_LINEAR_METRIC,
            _nw_linear(better),
            _nw_linear(worse),
        )
        for better, worse in (("supervised", "amdim"), ("amdim", "rotation"), ("cmc", "vae"))
    ),
    _nw_claim(
        "amdim_linear_not_finetuning",
        "sec. 8, Table 1 and Fig. 4",
        "despite AMDIM's best linear evaluation, rotation finetunes better than AMDIM",
        f"Table 1 (TCVL): AMDIM {_NW_TCVL['amdim']}, rotation {_NW_TCVL['rotation']}; its "
        "utility is lower than rotation's",
        f"{_NW_TASKS['classification']} {_NW_SCALE}",
        _nw("rotation", 100),
        _nw("amdim", 100),
    ),
    *(
        _nw_claim(
            f"{m}_finetuned_whole_beats_frozen",
            "Fig. 8, sec. 8",
            f"{_NW_NAMES[m]}: the best accuracy is reached finetuning the whole trunk, not with "
            "three blocks frozen",
            "no table: Fig. 8 shows 'frozen (3)' losing accuracy with the most labels",
            _NW_FROZEN_METRIC,
            dataclasses.replace(_nw(m, 1000), label=f"{_NW_NAMES[m]}, whole"),
            Arm(f"{_NW_NAMES[m]}, 3 frozen", _NW_FROZEN, {"method": m, "k": 3, "n": 1000}),
        )
        for m in ("rotation", "vae", "cmc", "amdim")
    ),
    *(_nw_texture_claim(m, signs["T"]) for m, signs in NEWELL20_FACTORS.items() if "T" in signs),
)

_CT = "contrastive/classification/results.jsonl"
_CT_RUN = (
    *(
        f"zoo-train --gin_file=gin_configs/contrastive/{m}.gin "
        f"--gin_file=gin_configs/contrastive/small.gin --model_dir={{root}}/contrastive/{m}"
        for m in ("moco_v2", "densecl", "simclr")
    ),
    "zoo-sweep --sweep_dir={root}/contrastive/classification "
    "--gin_file=gin_configs/contrastive/classification_sweep.gin --seeds=0,1 "
    "--method=moco_v2={root}/contrastive/moco_v2 --method=densecl={root}/contrastive/densecl "
    "--method=simclr={root}/contrastive/simclr",
)


def _ct(method):
    return Claim(
        f"{method}_helps_with_few_labels",
        "contrastive",
        "MoCo v2 / SimCLR / DenseCL papers, as CompL uses them",
        f"{method} pretraining finetunes better than scratch with few labels",
        "ImageNet-scale only (linear top-1, VOC / COCO transfer); no CPU-scale number",
        "classification accuracy, finetuned on 100 TCVL objects (same steps for both)",
        Arm(f"{method}, n=100", _CT, {"method": method, "n": 100}),
        Arm("scratch, n=100", _CT, {"method": "scratch", "n": 100}),
        _CT_RUN,
    )


CONTRASTIVE = tuple(_ct(m) for m in ("moco_v2", "densecl", "simclr"))

_DZ = "doersch17/linear/results.jsonl"
_DZ_ROWS = ("rp", "rp_col", "rp_col_ex_ms", "rp_col_h")
_DZ_RUN = (
    *(
        f"zoo-train --gin_file=gin_configs/doersch17/{r}.gin "
        f"--gin_file=gin_configs/doersch17/small.gin --model_dir={{root}}/doersch17/{r}"
        for r in _DZ_ROWS
    ),
    "zoo-sweep --sweep_dir={root}/doersch17/linear "
    "--gin_file=gin_configs/doersch17/eval_linear.gin "
    "--gin_file=gin_configs/doersch17/small.gin --counts=1000 --seeds=0,1 "
    + " ".join(f"--method={r}={{root}}/doersch17/{r}" for r in _DZ_ROWS),
)
_DZ_METRIC = "frozen linear probe on block 3, 1000 TCVL objects: classification accuracy"


def _dz(name, where, statement, numbers, better, worse):
    return Claim(
        name,
        "doersch17",
        where,
        statement,
        numbers,
        _DZ_METRIC,
        Arm(better, _DZ, {"method": better, "n": 1000}),
        Arm(worse, _DZ, {"method": worse, "n": 1000}),
        _DZ_RUN,
    )


DOERSCH17 = (
    _dz(
        "pretext_beats_random",
        "Table 1, sec. 6.1",
        "every pretext task beats random initialisation (relative position shown)",
        "ImageNet frozen top-5: RP 59.21; random-init ResNet 10.5",
        "rp",
        "scratch",
    ),
    _dz(
        "rp_col_beats_rp",
        "Table 2",
        "adding colorization to relative position helps",
        "ImageNet frozen top-5 66.64 vs 59.21; PASCAL 68.75 vs 66.75",
        "rp_col",
        "rp",
    ),
    _dz(
        "four_tasks_beat_rp",
        "Table 2",
        "all four tasks together beat relative position alone",
        "ImageNet frozen top-5 69.30 vs 59.21; PASCAL 70.53 vs 66.75",
        "rp_col_ex_ms",
        "rp",
    ),
    _dz(
        "harmonization_helps_frozen",
        "Table 3",
        "harmonization helps RP+Col on the frozen ImageNet evaluation",
        "ImageNet frozen top-5 68.08 vs 66.64 (PASCAL 68.26 vs 68.75: no gain)",
        "rp_col_h",
        "rp_col",
    ),
)


_CL = "compl22/results.jsonl"
_CL_FRACTIONS = "0.05,1.0"
_CL_RUN = (
    "zoo-evaluate compl --out={root}/compl22 --targets=semseg,depth "
    f"--auxiliaries=none,rot,moco,densecl --fractions={_CL_FRACTIONS} --seeds=0,1,2",
)


def _cl(target, auxiliary, fraction, value="value"):
    names = {"none": target, "rot": f"{target} + Rot", "moco": f"{target} + MoCo"}
    names["densecl"] = f"{target} + DenseCL"
    where = {"target": target, "auxiliary": auxiliary, "fraction": fraction}
    return Arm(f"{names[auxiliary]}, {fraction:g} of the labels", _CL, where, value)


def _cl_gain(target, auxiliary, fraction):
    arm = _cl(target, auxiliary, fraction)
    return dataclasses.replace(
        arm, label=f"{auxiliary} − alone, {fraction:g}", minus=_cl(target, "none", fraction)
    )


_CL_SEG = "segmentation mIoU on held-out -C-L scenes (ResNet-26 / DeepLabv3+ at 1/8 width)"
_CL_DEPTH = "depth RMSE on held-out -C-L scenes (ResNet-26 / DeepLabv3+ at 1/8 width)"


def _cl_claim(name, where, statement, numbers, metric, better, worse, higher=True):
    return Claim(name, "compl22", where, statement, numbers, metric, better, worse, _CL_RUN, higher)


COMPL22 = (
    *(
        _cl_claim(
            f"{aux}_helps_depth",
            "Table 1, sec. 4.1",
            f"{label} as the auxiliary improves depth with few labels (5 %)",
            f"RMSE at 5 %: {number} vs .8871 (depth alone)",
            _CL_DEPTH,
            _cl("depth", aux, 0.05),
            _cl("depth", "none", 0.05),
            higher=False,
        )
        for aux, label, number in (
            ("rot", "rotation", ".8762"),
            ("moco", "MoCo", ".8501"),
            ("densecl", "DenseCL", ".8479"),
        )
    ),
    *(
        _cl_claim(
            f"{aux}_helps_segmentation",
            "Table 2, sec. 4.2",
            f"{label} as the auxiliary improves segmentation with few labels (5 %)",
            f"mIoU at 5 %: {number} vs 49.95 (segmentation alone)",
            _CL_SEG,
            _cl("semseg", aux, 0.05),
            _cl("semseg", "none", 0.05),
        )
        for aux, label, number in (("moco", "MoCo", "52.18"), ("densecl", "DenseCL", "52.76"))
    ),
    _cl_claim(
        "contrastive_beats_rotation_for_segmentation",
        "Table 2, sec. 4.2",
        "a contrastive auxiliary (DenseCL) helps segmentation more than rotation",
        "mIoU at 5 %: 52.76 (+DenseCL) vs 50.46 (+Rot); at 1 %: 33.51 vs 28.75 (below 30.82 alone)",
        _CL_SEG,
        _cl("semseg", "densecl", 0.05),
        _cl("semseg", "rot", 0.05),
    ),
    _cl_claim(
        "segmentation_gain_largest_with_few_labels",
        "Table 2, sec. 4.2",
        "DenseCL's gain for segmentation is larger with few labels than with all",
        "gain +2.8 mIoU at 5 % vs +0.7 at 100 %",
        "DenseCL's mIoU minus the target alone's, same fraction and seed",
        _cl_gain("semseg", "densecl", 0.05),
        _cl_gain("semseg", "densecl", 1.0),
    ),
    _cl_claim(
        "densecl_more_robust",
        "Tables S.7 / S.8",
        "segmentation trained with DenseCL transfers better zero-shot to a shifted domain",
        "VOC -> BDD100K mIoU at 5 %: 15.30 vs 10.16; VOC -> COCO at 1 %: 25.96 vs 23.78",
        "segmentation mIoU zero-shot on the photo-textured P scenes",
        _cl("semseg", "densecl", 0.05, "value_P"),
        _cl("semseg", "none", 0.05, "value_P"),
    ),
)


_MG = "mgm22/results.jsonl"
_MG_RUN = (
    "zoo-evaluate mgm22 --out={root}/mgm22 --rows=st,mt,mgm_g,mgm_j,mgm,mgmr "
    "--fractions=1.0,0.5,0.25 --seeds=0,1",
    "zoo-evaluate mgm22 --out={root}/mgm22 --rows=mgm_refine,mgm_self --fractions=0.5 --seeds=0,1",
)
_MG_NAMES = {"st": "ST", "mt": "MT", "mgm_g": "MGM/G", "mgm_j": "MGM/j", "mgm": "MGM"}
_MG_NAMES.update(mgmr="MGMr", mgm_refine="MGM/refine", mgm_self="MGM/self")
# task -> (its value in the records, the metric's words, higher is better)
_MG_TASKS = {
    "segmentation": ("semantic_segmentation", "segmentation mIoU", True),
    "depth": ("depth", "depth mean absolute error (m)", False),
    "normals": ("normals", "normals mean angle (deg)", False),
}
_MG_SCALE = "on 256 held-out multi-object scenes at 32 px (small.gin, 20 task epochs)"


def _mg(row, fraction, task):
    where = {"row": row, "fraction": fraction}
    return Arm(f"{_MG_NAMES[row]}, {fraction:g}", _MG, where, _MG_TASKS[task][0])


def _mg_claim(name, where, statement, numbers, task, better, worse):
    _, words, higher = _MG_TASKS[task]
    return Claim(
        name, "mgm22", where, statement, numbers, f"{words} {_MG_SCALE}", better, worse,
        _MG_RUN, higher,
    )  # fmt: skip


def _mg_gain(task, fraction):
    arm = _mg("mgm", fraction, task)
    return dataclasses.replace(
        arm, label=f"MGM − MT, {fraction:g}", minus=_mg("mt", fraction, task)
    )


MGM22 = (
    *(
        _mg_claim(
            f"mgm_beats_{worse}_{task}",
            "Table 2, sec. 4.2",
            f"MGM beats {_MG_NAMES[worse]} on {task} with a quarter of the labels",
            f"NYUv2 at 25 %: {numbers}",
            task,
            _mg("mgm", 0.25, task),
            _mg(worse, 0.25, task),
        )
        for worse, task, numbers in (
            ("mt", "segmentation", "mIoU .229 vs .207"),
            ("mt", "depth", "mABSE .844 vs .874"),
            ("mt", "normals", "mAD .277 vs .296"),
            ("st", "normals", "mAD .277 vs .312"),
        )
    ),
    _mg_claim(
        "gain_grows_as_labels_shrink",
        "Table 2, sec. 4.2",
        "MGM's gain over MT in segmentation is larger with 25 % of the labels than with all",
        "NYUv2 mIoU gain +.022 at 25 % vs +.008 at 100 %",
        "segmentation",
        _mg_gain("segmentation", 0.25),
        _mg_gain("segmentation", 1.0),
    ),
    *(
        _mg_claim(
            f"generator_adds_{task}",
            "Table 3, sec. 4.2",
            f"the generator adds to MGM/G (refinement and SimCLR alone) on {task}",
            f"NYUv2 at 25 %: {numbers}",
            task,
            _mg("mgm", 0.25, task),
            _mg("mgm_g", 0.25, task),
        )
        for task, numbers in (
            ("segmentation", "mIoU .229 vs .215"),
            ("depth", "mABSE .844 vs .868"),
            ("normals", "mAD .277 vs .292"),
        )
    ),
    _mg_claim(
        "joint_beats_separate_generator",
        "Table 3, sec. 4.2",
        "training G jointly beats a G trained beforehand and frozen (MGM/j), on depth",
        "NYUv2 at 25 %: mABSE .844 vs .860",
        "depth",
        _mg("mgm", 0.25, "depth"),
        _mg("mgm_j", 0.25, "depth"),
    ),
    _mg_claim(
        "auxiliaries_beat_mt",
        "Table 3, sec. 4.2",
        "refinement and SimCLR without a generator (MGM/G) beat MT on depth",
        "NYUv2 at 25 %: mABSE .868 vs .874",
        "depth",
        _mg("mgm_g", 0.25, "depth"),
        _mg("mt", 0.25, "depth"),
    ),
    _mg_claim(
        "refinement_helps_normals",
        "Table 4, sec. 4.3",
        "the refinement network helps normals (MGM against MGM/refine)",
        "NYUv2 at 50 %: mAD .273 vs .290 (segmentation: .251 vs .254, no gain)",
        "normals",
        _mg("mgm", 0.5, "normals"),
        _mg("mgm_refine", 0.5, "normals"),
    ),
    _mg_claim(
        "self_supervision_helps_segmentation",
        "Table 4, sec. 4.3",
        "SimCLR helps segmentation (MGM against MGM/self)",
        "NYUv2 at 50 %: mIoU .251 vs .239",
        "segmentation",
        _mg("mgm", 0.5, "segmentation"),
        _mg("mgm_self", 0.5, "segmentation"),
    ),
)


def _mgm_details(root):
    from zoo.evaluation import mgm22  # it judges with this module's `judge`

    records = _records(os.path.join(root, _MG))
    return mgm22.report(records) if records else None


def _newell20_details(root):
    from zoo.evaluation import newell20  # it judges with this module's `judge`

    sections = []
    linear = _records(os.path.join(root, _NW_LINEAR))
    if linear:
        table = newell20.table_1(linear, newell20.METHODS, ["TCVL"])
        sections += ["Table 1 (linear evaluation):", table]
    for task, words in _NW_TASKS.items():
        found = _records(os.path.join(root, _NW.format(task=task, variant="TCVL")))
        if found:
            table = sweep.markdown_table(sweep.summarize(found), found[0]["metric"])
            sections += [f"{task[0].upper()}{task[1:]} ({words}, TCVL):", table]
    return "\n\n".join(sections) or None


def _compl_details(root):
    records = _records(os.path.join(root, _CL))
    return compl.report(records) if records else None


def _adaptation_details(root):
    records = _records(os.path.join(root, _RL))
    return adaptation.comparison_table(records) if records else None


def _sweep_details(file):
    def render(root):
        found = _records(os.path.join(root, file))
        if not found:
            return None
        return sweep.markdown_table(sweep.summarize(found), found[0]["metric"])

    return render


# every measurement of a paper's runs, below its claims: (heading, renderer of root)
DETAILS = {
    "doersch17": ("Every probe of the sweep", _sweep_details(_DZ)),
    "ren_lee18": ("Every measured row of Table 3", _adaptation_details),
    "newell20": ("Table 1 and the sweeps", _newell20_details),
    "contrastive": ("The whole sweep", _sweep_details(_CT)),
    "compl22": ("The whole grid", _compl_details),
    "mgm22": ("The whole grid", _mgm_details),
}

PAPERS = {
    p.key: p
    for p in (
        Paper(
            "doersch17",
            "Doersch & Zisserman 2017",
            "built: the four tasks, lasso, harmonization",
            DOERSCH17,
        ),
        Paper("ren_lee18", "Ren & Lee 2018", "built: Table 3's ten rows, adaptation", REN_LEE18),
        Paper(
            "newell20",
            "Newell & Deng 2020",
            "built: the benchmark, the four methods, online probes, kNN, sweeps, utility, the "
            "comparison grid",
            NEWELL20,
        ),
        Paper("contrastive", "Contrastive (SimCLR, MoCo v2, DenseCL)", "built", CONTRASTIVE),
        Paper(
            "compl22",
            "CompL 2022",
            "built: the network, composite training, the key bank, label fractions, the "
            "starts, the grid; non-square inputs (425x560 depth) not yet",
            COMPL22,
        ),
        Paper(
            "mgm22",
            "MGM 2022",
            "built: M, R, the conditional GAN in three stages, MGMr and the ablations, the "
            "comparison grid, the rollback on a GAN blow-up",
            MGM22,
        ),
    )
}


def select(paper=None, claim=None) -> list:
    """The claims of one paper (or every paper), or one claim by its id or name."""
    if paper is not None and paper not in PAPERS:
        raise UserError(f"unknown paper {paper!r}; papers: {sorted(PAPERS)}")
    chosen = [c for p in PAPERS.values() if paper in (None, p.key) for c in p.claims]
    if claim is not None:
        chosen = [c for c in chosen if claim in (c.id, c.name)]
        if not chosen:
            known = [c.id for p in PAPERS.values() for c in p.claims]
            raise UserError(f"unknown claim {claim!r}; claims: {known}")
    return chosen


# -- running and judging ------------------------------------------------------------------


def commands_of(claims, root: str) -> list:
    """The claims' commands, each once, in order, with the claims folder filled in."""
    seen = []
    for claim in claims:
        for command in claim.commands:
            command = command.format(root=root)
            if command not in seen:
                seen.append(command)
    return seen


_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def argv_of(command: str) -> list:
    """A `zoo-*` command as an argv of this Python (no PATH needed); its gin files are
    the checkout's when the working folder has no `gin_configs/`."""
    argv = shlex.split(command)
    module = "zoo.cli." + argv[0].removeprefix("zoo-").replace("-", "_")
    args = []
    for arg in argv[1:]:
        name, _, value = arg.partition("=")
        if name == "--gin_file" and not os.path.exists(value):
            arg = f"{name}={os.path.join(_CHECKOUT, value)}"
        args.append(arg)
    return [sys.executable, "-m", module, *args]


def run(claims, root: str, say=print) -> None:
    """Runs the commands of the claims that have no verdict yet (each command is itself
    resumable: zoo-train resumes a run, zoo-sweep and adaptation skip finished cells)."""
    missing = [c for c in claims if judge_claim(c, root).verdict == "no runs"]
    for i, command in enumerate(commands_of(missing, root), start=1):
        say(f"[{i}] {command}")
        finished = subprocess.run(argv_of(command))
        if finished.returncode != 0:
            raise UserError(f"`{command}` failed (exit status {finished.returncode}).")


def judge_claim(claim: Claim, root: str) -> Verdict:
    better = claim.better.values(root)
    worse = claim.worse.values(root)
    return judge(list(better.values()), list(worse.values()), claim.higher_is_better)


def _row(claim, verdict):
    difference = "—"
    if not math.isnan(verdict.difference):
        difference = f"{verdict.difference:+.3f}"
        if not math.isnan(verdict.error):
            difference += f" ± {verdict.error:.3f}"
    return (
        f"| {claim.statement} ({claim.where}) | {claim.paper_numbers} | "
        f"{claim.better.label}: {pages.format_stats(verdict.better)} | {claim.worse.label}: "
        f"{pages.format_stats(verdict.worse)} | {difference} | **{verdict.verdict}** |"
    )


HEADER = (
    "| claim (where in the paper) | the paper's numbers | zoo, one arm: mean ± std (seeds) | "
    "zoo, the arm it should beat | difference ± standard error | verdict |\n"
    "|---|---|---|---|---|---|"
)


def table(claims, root: str) -> str:
    """Markdown: one line per claim, the paper's numbers beside the zoo's and the verdict."""
    return "\n".join([HEADER, *(_row(c, judge_claim(c, root)) for c in claims)])


def paper_page(paper: Paper, root: str) -> str:
    """The body of a paper's results page: its claims, how each is measured, and the
    commands of those that have no runs yet."""
    if not paper.claims:
        return f"{paper.title}: {paper.status}; no claim is registered yet.\n"
    lines = [
        f"Claims of {paper.title} that the zoo tests at CPU scale, judged on the runs in "
        f"`{root}` (rule: [How results are made](index.md)).",
        "",
        table(paper.claims, root),
        "",
        "## How each claim is measured",
        "",
    ]
    for claim in paper.claims:
        direction = "higher" if claim.higher_is_better else "lower"
        lines.append(f"- `{claim.id}`: {claim.metric} ({direction} is better).")
    heading, render = DETAILS.get(paper.key, (None, lambda root: None))
    details = render(root)
    if details:
        lines += ["", f"## {heading}", "", details]
    lines += ["", "## The commands that make the runs", "", "```sh"]
    lines += commands_of(paper.claims, root) + ["```"]
    missing = [c.id for c in paper.claims if judge_claim(c, root).verdict == "no runs"]
    if missing:
        lines += [
            "",
            f"No runs yet for {', '.join(f'`{m}`' for m in missing)}: "
            f"`zoo-evaluate claims --paper={paper.key} --root={root} --run` makes them.",
        ]
    return "\n".join(lines) + "\n"


def overview(root: str, only: str | None = None, previous: str = "", command: str = "") -> str:
    """The body of the page of every paper's claims and their verdicts.

    With `only` (a paper's key), that paper's section is judged on `root` and stamped
    with `command`, and the other papers' sections are kept as the `previous` page (its
    text) has them, each with the stamp it was made with: judging one paper's runs does
    not drop the verdicts of the others, whose runs may live elsewhere.
    """
    kept = _sections(previous) if only else {}
    parts = []
    for paper in PAPERS.values():
        if paper.key != only and paper.title in kept:
            parts.append(kept[paper.title])
            continue
        lines = [f"## {paper.title}", ""]
        if only:
            lines += [pages.stamp(command)]  # it ends with its own newline
        lines += [f"Status: {paper.status}.", ""]
        if paper.claims:
            lines += [table(paper.claims, root), ""]
        else:
            lines += ["No claim registered yet.", ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)


def _sections(page: str) -> dict:
    """{paper title: its section} of a claims page; a section without a stamp of its own
    gets the page's (the command that made it)."""
    stamp_line = next((line for line in page.splitlines() if line.startswith("*Generated")), "")
    found, title = {}, None
    for line in page.splitlines():
        if line.startswith("## "):
            title = line[3:]
            found[title] = [line]
        elif title is not None:
            found[title].append(line)
    out = {}
    for title, lines in found.items():
        if stamp_line and not any(line.startswith("*Generated") for line in lines):
            lines = [lines[0], "", stamp_line, *lines[1:]]
        out[title] = "\n".join(lines).rstrip() + "\n"
    return out
