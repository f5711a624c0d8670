"""`train`: one run as named stages, each done once per run (progress.json)."""

import os

import gin
import keras
import tensorflow as tf
from absl import logging

from zoo import checks, files
from zoo.data import tfrecord
from zoo.errors import TrainingDiverged, UserError, UserTypeError, first_line
from zoo.experiment import cluster, loop, parameter_server
from zoo.experiment.callbacks import (
    EpochCheckpoints,
    PreciseBatchNorm,
    StopOnNonFinite,
    StopOnRequest,
)
from zoo.experiment.checkpoints import checkpoints, epoch_of, resume_point
from zoo.experiment.run_state import Progress, check_stop
from zoo.experiment.runtime import epoch_lines, precision_policy, runtime
from zoo.methods import Method
from zoo.methods.base import serialize
from zoo.version import code_version


def _check_length(key, value):
    checks.int_at_least(value, 1, key, keyed=True)


@gin.configurable(module="zoo.experiment", denylist=["model_dir", "exporter"])
def train(
    model_dir: str,
    method=gin.REQUIRED,
    optimizer=gin.REQUIRED,
    batch_size: int = 16,
    epochs: int = 5,
    steps_per_epoch: int = 50,
    strategy: str = "auto",
    precision: str = "float32",
    seed: int = 0,
    callbacks=(),
    deterministic: bool = True,
    serial_ops: bool = False,
    verbose: int = 1,
    precise_batch_norm: int = 0,
    recoveries: int = 0,
    loss_bound: float | None = None,
    exporter=None,
) -> dict:
    """Builds a method, evaluates it, trains it, evaluates it again, exports its trunk
    (with an `exporter`).

    The stages, each done once per run whatever the number of processes (the run's
    progress.json records them): build (`_build`), evaluate untrained, fit the remaining
    epochs (`_fit_remaining_epochs`: resume, fit, precise BatchNorm at the end), evaluate
    trained, export, report (`_report`). Re-running it on a model_dir whose run was
    interrupted resumes that run (see the module docstring); `prepare_model_dir` first
    checks the configuration is the same.

    Args:
        model_dir: str. Where everything is written (see the module docstring).
        method: callable. Builds the Method inside the strategy scope: a gin reference
            without parentheses, e.g. `@zoo.methods.MultiTask` (its knobs are its own
            bindings, `zoo.methods.MultiTask.lasso_block = "block3"`).
        optimizer: keras Optimizer or dict {player: Optimizer}, e.g.
            `@keras.optimizers.RMSprop()` with any of its arguments (schedules, weight
            decay, clipnorm). One optimizer gives every player its own copy.
        batch_size: int. Global batch size of every data stream. Defaults to 16.
        epochs: int. Defaults to 5.
        steps_per_epoch: int. Steps between checkpoints: a resumed run redoes at most
            the steps of one epoch. Defaults to 50.
        strategy: str. "auto" (MirroredStrategy over the GPUs when there are
            several, else the default), "default", "mirrored" (every GPU, or the CPU),
            "multi_worker" (the machines of `TF_CONFIG`, through the zoo's own loop)
            or "parameter_server" (Doersch & Zisserman's asynchronous per-task updates:
            `zoo.experiment.parameter_server`); docs/guides/scale-out.md. Defaults to
            "auto".
        precision: str. "float32", "mixed_float16" (float16 compute, every player's
            optimizer scaling its loss) or "mixed_bfloat16" (no loss scaling needed):
            Keras' dtype policy while the method is built and trained. Variables,
            BatchNorm statistics, head outputs, losses, metrics and exports stay
            float32 (docs/guides/scale-out.md, "Mixed precision"). Defaults to "float32".
        seed: int. Seeds Keras, NumPy and TensorFlow. Defaults to 0.
        callbacks: list of keras callbacks added to the run's own (e.g.
            `@zoo.experiment.CostBudget()`); one with a `model_dir` attribute of None
            gets the run's. Defaults to none.
        deterministic: bool. Deterministic TensorFlow ops: the same data, initial
            weights and first steps from run to run; concurrent ops still make runs
            drift apart in the last bits (docs/guides/determinism-and-resume.md). Defaults to True.
        serial_ops: bool. Run TensorFlow's ops one at a time (`run_ops_one_at_a_time`),
            which with `deterministic` makes same-seed runs bit-identical on a CPU, at
            about 0.8x the speed (a process that already ran ops warns instead).
            Defaults to False.
        verbose: int. Keras progress bar (1; one line per epoch when standard output is
            not a terminal, so logs do not fill with redraws), one line per epoch (2) or
            nothing (0). Defaults to 1.
        precise_batch_norm: int. After the last epoch, before its checkpoint, set every
            trained BatchNorm's moving statistics to the mean batch statistics of this
            many training batches under the final weights (`Method.precise_batch_norm`;
            docs/guides/experiments.md, "Precise BatchNorm"): short runs at a constant
            learning rate end with moving averages that lag behind the weights. 0 keeps
            the moving averages, as the papers do. Defaults to 0.
        recoveries: int >= 0. How many times a run that diverges (a loss NaN, infinite
            or above `loss_bound`) goes back to its last good checkpoint and trains on,
            the method told by `rolled_back(attempt)` (MGM draws new noise), before it
            stops with TrainingDiverged (Model Garden's `recovery_max_trials`). On one
            machine (not multi_worker or parameter_server). Defaults to 0.
        loss_bound: float > 0 or None. A loss above it counts as diverged (Model
            Garden's `loss_upper_bound`). Defaults to None: NaN or infinite only.
        exporter: callable or None. The export stage: `exporter(trunk, path,
            harmonizer, overwrite=True)` writes the trained trunk to `export/trunk`.
            The commands pass `export.export_trunk` (a SavedModel for TF Serving); the
            driver does not import the top-level `export/` package itself. Defaults to
            None: no export ("export" is None in the results).

    Returns:
        None on a worker of a multi-worker run that is not the chief (the chief
        evaluates, exports and reports); otherwise a dict with "untrained" and
        "trained" held-out metrics per objective, "metric_info", "history" (every
        epoch, across the processes of a resumed run), "seconds" (training time,
        summed the same way), "export" (the trunk's SavedModel, or None without an
        `exporter`) and "code" (the commit of the code that finished the run,
        `zoo.version.code_version`).
    """
    _check_train_arguments(method, batch_size, epochs, steps_per_epoch, precise_batch_norm)
    _check_recoveries(recoveries, loss_bound, strategy)
    callbacks = list(callbacks or ())
    if strategy == "parameter_server" and not cluster.is_chief(cluster.require_cluster()):
        # a worker or parameter server: the chief drives it until the run ends
        parameter_server.serve(cluster.tf_config())
        return None
    distribution = runtime(strategy, seed, deterministic, serial_ops)
    chief = strategy != "multi_worker" or cluster.is_chief()
    verbose = verbose if chief else 0
    # one writer per model_dir (a worker that is not the chief writes a temporary copy);
    # a DataLossError of any pipeline becomes a DataError naming the damaged file
    with (
        precision_policy(precision),
        cluster.writable_model_dir(model_dir, chief) as model_dir,
        files.exclusive(model_dir),
        tfrecord.damaged_files_named(),
    ):
        say = print if verbose else logging.info
        model, progress = _build(model_dir, method, optimizer, distribution)
        if progress["untrained"] is None:  # evaluate untrained
            progress.set(untrained=model.heldout_metrics(batch_size))
        check_stop(model_dir, "before training")
        _fit_remaining_epochs(
            model,
            model_dir,
            progress,
            distribution,
            batch_size=batch_size,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            precise_batch_norm=precise_batch_norm,
            recoveries=recoveries,
            loss_bound=loss_bound,
            verbose=verbose,
            say=say,
        )
        if not chief:
            return None
        if progress["trained"] is None:  # evaluate trained
            trained = model.heldout_metrics(batch_size)
            progress.set(trained=trained, examples=model.heldout_examples())
            check_stop(model_dir, "after the held-out evaluation")
        export_path = None
        if exporter is not None:  # export
            export_path = os.path.join(model_dir, "export", "trunk")
            if progress["export"] is None:
                trunk = _off_strategy(model.trunk, distribution)
                exporter(trunk, export_path, model.serving_harmonizer(), overwrite=True)
                progress.set(export=export_path)
        return _report(model, model_dir, progress, export_path)


def _check_train_arguments(method, batch_size, epochs, steps_per_epoch, precise_batch_norm):
    if isinstance(method, Method) or not callable(method):
        raise UserTypeError(
            "`method` must build the method inside the strategy scope: give the gin "
            "reference without parentheses (`@zoo.methods.MultiTask`, not "
            f"`@zoo.methods.MultiTask()`). Received: {method!r}"
        )
    for key, value in (
        ("batch_size", batch_size),
        ("epochs", epochs),
        ("steps_per_epoch", steps_per_epoch),
    ):
        _check_length(key, value)
    wanted = f"`precise_batch_norm` must be an int >= 0 (0: off). Received: {precise_batch_norm!r}"
    if isinstance(precise_batch_norm, bool) or not isinstance(precise_batch_norm, int):
        raise UserTypeError(wanted)
    if precise_batch_norm < 0:
        raise UserError(wanted)


def _check_recoveries(recoveries, loss_bound, strategy):
    checks.int_at_least(recoveries, 0, "recoveries", keyed=True)
    if loss_bound is not None:
        checks.number_in(loss_bound, "loss_bound", 0, low_open=True)
    if recoveries and strategy in ("multi_worker", "parameter_server"):
        raise UserError(
            f"`recoveries` rolls a run back on one machine; strategy={strategy!r} runs on "
            "several (set recoveries = 0 and resume by hand from the last checkpoint)."
        )


def _build(model_dir, method, optimizer, distribution):
    """Builds and compiles the method in the strategy's scope, writes its method.json
    and the operative config; returns it with the run's progress."""
    with distribution.scope():
        model = method()
        if not isinstance(model, Method):
            raise UserTypeError(f"`method` built {type(model).__name__}, not a zoo Method.")
        model.compile(optimizer)
    files.write_json(os.path.join(model_dir, "method.json"), serialize(model))
    files.write_text(os.path.join(model_dir, "operative_config.gin"), gin.operative_config_str())
    return model, Progress(model_dir)


def _fit_remaining_epochs(model, model_dir, progress, distribution, **run):
    """Resumes from the last good checkpoint and fits the epochs not yet done (nothing
    when training had ended), then records that fitting ended."""
    epochs, say = run["epochs"], run["say"]
    done = resume_point(model, model_dir, progress, epochs)
    if progress["fit_done"] and done < progress["fit_epochs"]:
        # the last checkpoint was set aside: train its epochs again, then evaluate
        progress.set(fit_done=False, trained=None, export=None)
    if progress["fit_done"]:
        say("training had ended; evaluating and exporting")
        return
    if done:
        say(f"resuming after epoch {done} of {epochs}")
    for callback in run["callbacks"]:
        if getattr(callback, "model_dir", "") is None:
            callback.model_dir = model_dir
    precise = []
    if run["precise_batch_norm"]:
        precise = [PreciseBatchNorm(run["batch_size"], run["precise_batch_norm"], epochs, say)]
    attempt = 0
    while done < epochs:
        try:
            _fit_from(done, model, model_dir, progress, distribution, precise, run)
            break
        except TrainingDiverged as error:
            if attempt == run["recoveries"]:
                if attempt:
                    raise TrainingDiverged(f"{error} (after {attempt} roll-back(s))") from None
                raise
            attempt += 1
            done = resume_point(model, model_dir, progress, epochs)
            if not done:
                raise TrainingDiverged(f"{error} No checkpoint to roll back to.") from None
            model.rolled_back(attempt)
            say(
                f"{first_line(error)} Rolled back to epoch {done} (recovery {attempt} of "
                f"{run['recoveries']})."
            )
    last = checkpoints(model_dir)
    progress.set(fit_done=True, fit_epochs=epoch_of(last[-1]) if last else 0)
    check_stop(model_dir, "after training")


def _fit_from(done, model, model_dir, progress, distribution, precise, run):
    """Fits the epochs after `done` with the run's callbacks."""
    steps_per_epoch = run["steps_per_epoch"]
    _fit(
        model,
        distribution,
        # the batches of the finished epochs are skipped: a resumed run trains on
        # the same sequence of batches as an uninterrupted one
        lambda batch_size: model.datasets(batch_size).skip(done * steps_per_epoch),
        batch_size=run["batch_size"],
        initial_epoch=done,
        epochs=run["epochs"],
        steps_per_epoch=steps_per_epoch,
        callbacks=[
            *model.method_callbacks(),
            *run["callbacks"],
            StopOnNonFinite(os.path.join(model_dir, "checkpoints"), run["loss_bound"]),
            *precise,
            EpochCheckpoints(model_dir, progress),
            keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
            StopOnRequest(model_dir),  # last: sees a request made in the others
        ],
        verbose=epoch_lines(run["verbose"]),
    )


def _fit(model, distribution, dataset_fn, batch_size, **fit):
    """Keras' `fit` on one machine; the zoo's loop (`zoo.experiment.loop`) on several,
    where `fit` does not work; per-task asynchronous steps on parameter servers
    (`zoo.experiment.parameter_server`)."""
    if isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy):
        data = loop.replica_batches(dataset_fn, batch_size, distribution)
        return loop.fit(model, data, distribution, **fit)
    if isinstance(distribution, tf.distribute.ParameterServerStrategy):
        return parameter_server.fit(model, distribution, batch_size=batch_size, **fit)
    with distribution.scope():
        data = dataset_fn(batch_size)
    return model.fit(data, shuffle=False, **fit)  # the pipelines shuffle


def _off_strategy(trunk, distribution):
    """The trunk, or a copy of it outside the strategy (with its weights) when its
    variables are distributed: a SavedModel cannot capture distributed variables."""
    if distribution is tf.distribute.get_strategy():
        return trunk
    copy = keras.models.clone_model(trunk)
    copy.set_weights(trunk.get_weights())
    return copy


def _report(model, model_dir, progress, export_path):
    """The run's results from its progress (every epoch, across the processes of a
    resumed run), written to metrics.json with the final operative config."""
    trained_epochs = range(1, progress["fit_epochs"] + 1)
    records = [progress.epoch(e) for e in trained_epochs if progress.epoch(e)]
    history = {}
    for record in records:
        for key, value in record["logs"].items():
            history.setdefault(key, []).append(value)
    results = {
        "untrained": progress["untrained"],
        "trained": progress["trained"],
        "metric_info": model.metric_info(),
        "examples": progress["examples"] or {},
        "history": history,
        "seconds": sum(r["seconds"] for r in records),
        "export": export_path,
        "code": code_version(),
    }
    # every value used
    files.write_text(os.path.join(model_dir, "operative_config.gin"), gin.operative_config_str())
    files.write_json(os.path.join(model_dir, "metrics.json"), results)
    return results


def format_report(results: dict, model_dir: str) -> str:
    """Plain-text table of every held-out metric, untrained vs trained, and the files."""
    lines = [
        f"Held-out metrics, after {results['seconds']:.0f} s of training:",
        f"  {'task':<22} {'metric':<15} {'untrained':>10} {'trained':>10} {'examples':>9}  meaning",
    ]
    info = results.get("metric_info", {})
    counts = results.get("examples") or {}
    for task, metrics in results["trained"].items():
        count = str(counts.get(task, "?"))
        for name, value in metrics.items():
            direction, meaning = info.get(task, {}).get(name, ("neither", ""))
            before = results["untrained"][task][name]
            better = "" if direction == "neither" else f" ({direction} is better)"
            lines.append(
                f"  {task:<22} {name:<15} {before:>10.3f} {value:>10.3f} {count:>9}  "
                f"{meaning}{better}"
            )
    if counts:
        lines.append("  (examples: the held-out examples each metric was computed on)")
    lines += [
        "",
        f"Outputs in {model_dir}:",
        "  metrics.json (all metrics), checkpoints/, logs/ (tensorboard --logdir "
        f"{os.path.join(model_dir, 'logs')}),",
        "  method.json, operative_config.gin"
        + (
            f", and the trained trunk as a SavedModel in {results['export']}"
            if results.get("export")
            else " (the trunk was not exported)"
        ),
    ]
    return "\n".join(lines)
