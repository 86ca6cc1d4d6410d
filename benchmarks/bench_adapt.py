"""`adapt` (NetAdapt on a measured table) against uniform `channels --ratio r`, on `local` and
on an emulated Raspberry Pi 4 (arm64 code under qemu behind a real sshd).

The task is "digits in clutter" (`clutter_dataset`): every scikit-learn digit drawn at a random
size and place on a 48x48 canvas, over fragments of other digits and Gaussian noise (three
drawings per training digit, six per validation or ranking digit), drawings of one digit never
split between training and validation. It is hard enough that width matters (the base reaches
about 90 % top-1, uniform cuts lose points as they go), and the validation set is 2160
drawings of 360 digits; intervals resample the digits, not the drawings (`paired_bootstrap`).

The base model (MobileNet-style, resolution halved three times, so most of its latency sits
in the early, wide-image layers, as in MobileNets on their usual inputs) is trained to its
plateau first (a cosine decay to 0). Widths are multiples of 16 on both devices (at 8 the
x86 host's latency is not smooth in width, see `adapt.table`). Per device, one adapt run
goes to the largest target with constant 8 % latency cuts per iteration; its iterations are
the family of models for the smaller targets (as in the NetAdapt paper): for each target,
the first iteration measured at or below it, fine-tuned long-term. Adapt ranks its proposals
on its own validation data, `RANKING_DIGITS` training digits held out of every fit (base,
proposals, long fine-tunes, uniform's), so the validation digits that score every claim
choose nothing. Uniform pruning at several ratios (the same channel criterion and
granularity) is fine-tuned from the base in one run per adapt model's budget (its long
fine-tune plus one short epoch per iteration), so every adapt model is compared with uniform
cuts trained exactly as long. (Scoring one longer run on the way does not do: every
fine-tune starts a fresh Adam, and a score one epoch after such a restart is several points
down.) Every fine-tune (adapt's proposals and long one, uniform's) decays its rate to 0,
adapt's default, and runs once per seed of `SEEDS`; a model's top-1 is the mean over the seeds, so
one fine-tune's luck (2-4 points here) does not decide a claim.

On each device, every final model is measured in one interleaved group job, beside adapt's
reference model, so latencies are side by side. For each adapt model, the two uniform cuts
whose measured medians bracket its median are picked, and uniform's top-1 is interpolated
linearly in latency between them; the difference is paired (the same validation samples)
with a bootstrap interval over the digits (claim 1: goal >= +1 point). Claim 2 is the
latency uniform needs for adapt's top-1 (interpolated on the uniform curve) over adapt's
latency (goal >= 1.2x). Either meets the issue's acceptance. Claim 3: the table's predicted
latency of every final model against its measured one (in the reference job's conditions,
as adapt predicts; goal <= 10 %).

`BENCH_ADAPT_DEVICES` picks the devices (default `local,pi4`; `pi4` needs qemu-user-static
and openssh-server, and builds the emulated userland once, cached). `BENCH_ADAPT_WORK=DIR`
keeps the bench's files in DIR, and a second run there takes its data, base model, table and
finished adapt iterations from it (adapt resumes), and trains and measures the rest again.
The base runs in about 0.22 ms on a host core and 74 ms emulated; the bench takes about 2.5
hours on a 2-core host (each adapt run about 12 minutes; the uniform fine-tunes, five ratios
x four to six budgets x three seeds, about 100).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Ratio

REPO = Path(__file__).resolve().parents[1]
TARGETS = (1.3, 1.7, 2.2)
RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5)
STEP_REDUCTION = 0.08
GRANULARITY = 16
"""Widths are multiples of 16, also the minimum (XNNPACK's f32 kernels on an x86 host tile
output channels by 16: at 8 the host's whole-model latency is not smooth in width)."""
SHORT_EPOCHS = 1
LONG_EPOCHS = 3
BASE_EPOCHS = 18
BASE_LEARNING_RATE = 3e-3
"""The base trains with a cosine decay from this rate to 0 over its epochs (its plateau,
checked before `RANKING_DIGITS` left the training digits: 91.7 % at 15, 18, 21 and 30
epochs)."""
BATCH_SIZE = 32
DECAY = "cosine"
"""Every fine-tune of the bench (adapt's, which default to it, and uniform's)."""
SEEDS = (0, 1, 2)
"""Every compared fine-tune runs once per seed; a model's score is the mean over them (per
validation sample: the fraction of seeds that got it right), so one lucky or unlucky
fine-tune does not decide a claim."""
MAX_ITERATIONS = 14
BN_MOMENTUM = 0.9
BOOTSTRAP_DRAWS = 2000
RUNS = {"local": (60, 300, 400), "pi4": (20, 100, 150)}
"""device -> runs of a table entry, of a whole model in the loop, of a final model (the
emulated board is about 300x slower and its spread is far smaller)."""
CANVAS = 48
RANKING_DIGITS = 180
"""Digits held out of the training digits as adapt's validation data, what it ranks its
proposals on (a holdout of training drawings does not do: the base has learnt them, and
nearly every proposal scores 100 % on them)."""
DRAWINGS = 3
"""Drawings of each training digit."""
EVAL_DRAWINGS = 6
"""Drawings of each validation and ranking digit: scoring a model on more of them costs
nothing next to training it, and halves the share of a claim's (and of a ranking's) noise that
comes from how one digit happened to be drawn."""
EMULATED = {"pi4": ("pi4", "ai-edge-litert")}
"""bench device name -> (tools/emulated_board.py profile, runtime)."""


def clutter_dataset(path: Path, ranking: Path, seed: int = 0) -> None:
    """Write the "digits in clutter" data: `path` (.npz: x, y, x_val, y_val) and `ranking`
    (adapt's: the same x, y, and as validation `RANKING_DIGITS` other digits). Each training
    digit is drawn `DRAWINGS` times, each validation and ranking digit `EVAL_DRAWINGS` times;
    the splits are stratified splits of the digits (not of the drawings): 20 % validation,
    then the ranking digits out of the rest. Drawing `k` of validation digit `i` is sample
    `i * EVAL_DRAWINGS + k` (what `paired_bootstrap` resamples by). The training drawings
    come first from the generator, so they do not change with `EVAL_DRAWINGS`."""
    from scipy import ndimage
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images, labels = digits.images / 16.0, digits.target
    train, val = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=1234
    )
    train, rank = train_test_split(
        train, test_size=RANKING_DIGITS, stratify=labels[train], random_state=1234
    )
    rng = np.random.default_rng(seed)

    def paste(canvas: np.ndarray, image: np.ndarray, scale: float) -> None:
        h, w = image.shape
        r, c = rng.integers(0, CANVAS - h), rng.integers(0, CANVAS - w)
        canvas[r : r + h, c : c + w] = np.maximum(canvas[r : r + h, c : c + w], image * scale)

    def draw(index: int) -> np.ndarray:
        canvas = np.zeros((CANVAS, CANVAS), np.float32)
        for _ in range(3):  # a quarter of another digit, as clutter
            size = int(rng.integers(14, 26))
            other = ndimage.zoom(images[rng.integers(len(labels))], size / 8, order=1)
            r, c = (int(v) * size // 8 for v in rng.integers(0, 4, 2))
            paste(canvas, other[r : r + size // 2, c : c + size // 2], rng.uniform(0.5, 1.0))
        size = int(rng.integers(18, 30))
        paste(canvas, ndimage.zoom(images[index], size / 8, order=1), 1.0)
        canvas += rng.normal(0, 0.25, canvas.shape).astype(np.float32)
        return np.clip(canvas, 0, 1)

    def split(ids: np.ndarray, drawings: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([draw(i) for i in ids for _ in range(drawings)])[..., None]
        return x, np.repeat(labels[ids], drawings)

    x, y = split(train, DRAWINGS)
    x_val, y_val = split(val, EVAL_DRAWINGS)
    x_rank, y_rank = split(rank, EVAL_DRAWINGS)
    np.savez(path, x=x, y=y, x_val=x_val, y_val=y_val)
    np.savez(ranking, x=x, y=y, x_val=x_rank, y_val=y_rank)


def build_model(dataset: Any) -> Any:
    """MobileNet-style CNN on the 48x48 canvas: a strided stem and five depthwise-separable
    blocks (64 @ 24x24, 128 and 128 @ 12x12, 256 and 256 @ 6x6)."""
    from edgeprune import _tf

    keras = _tf.keras()
    layers = keras.layers
    keras.utils.set_random_seed(0)

    def bn(name: str) -> Any:
        return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)

    inputs = keras.Input(dataset.sample_shape, name="canvas")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem")(inputs)
    x = bn("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    blocks = (("b1", 64, 1), ("b2", 128, 2), ("b3", 128, 1), ("b4", 256, 2), ("b5", 256, 1))
    for name, filters, stride in blocks:
        x = layers.DepthwiseConv2D(
            3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw"
        )(x)
        x = bn(f"{name}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
        x = bn(f"{name}_pw_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_pw_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(dataset.num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="clutter48")


def correct_flags(model: Any, dataset: Any) -> np.ndarray:
    """Per validation sample: is the model's top-1 right (for paired comparisons)."""
    scores = model.predict(dataset.x_val, batch_size=256, verbose=0)
    return np.asarray(np.argmax(scores, axis=-1) == dataset.y_val)


def tuned_flags(path: Path, dataset: Any, epochs: int, save: Path | None = None) -> np.ndarray:
    """The model at `path` fine-tuned `epochs` (cosine) once per seed of `SEEDS`; per
    validation sample, the fraction of the fine-tunes that got it right (the first seed's
    model is saved to `save`: the widths, for measuring, are the same for every seed)."""
    from edgeprune.channels.finetune import finetune
    from edgeprune.models import load_keras_model

    runs = []
    for seed in SEEDS:
        model = load_keras_model(path)
        finetune(model, dataset, epochs=epochs, seed=seed, learning_rate_decay=DECAY)
        runs.append(correct_flags(model, dataset))
        if save is not None and seed == SEEDS[0]:
            model.save(save)
    return np.mean(runs, axis=0)


def paired_bootstrap(
    statistic: Callable[[dict[str, float]], float],
    flags: dict[str, np.ndarray],
    draws: int = BOOTSTRAP_DRAWS,
) -> tuple[float, list[float]]:
    """`statistic` of the models' top-1s, and its 95 % percentile interval from resampling
    the validation digits (each with all its `EVAL_DRAWINGS` drawings, which are not
    independent) for every model at once (the pairing). Draws where the statistic is not finite (no
    uniform cut as accurate) are left out. Hand-written rather than `scipy.stats.bootstrap`
    because the statistic is over several models' flags resampled together and may be
    infinite."""
    point = statistic({name: float(f.mean()) for name, f in flags.items()})
    per_digit = {name: f.reshape(-1, EVAL_DRAWINGS).mean(axis=1) for name, f in flags.items()}
    n = len(next(iter(per_digit.values())))
    rng = np.random.default_rng(0)
    values = []
    for _ in range(draws):
        index = rng.integers(0, n, n)
        values.append(statistic({name: float(f[index].mean()) for name, f in per_digit.items()}))
    finite = np.asarray([v for v in values if np.isfinite(v)])
    if not len(finite):
        return point, [float("nan"), float("nan")]
    return point, [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]


def bracket(ms: float, uniform: list[tuple[str, float]]) -> tuple[str, str] | None:
    """The uniform cuts (name, median ms) just slower and just faster than `ms`, or None
    when `ms` lies outside the uniform curve."""
    slower = [u for u in uniform if u[1] >= ms]
    faster = [u for u in uniform if u[1] < ms]
    if not slower or not faster:
        return None
    return min(slower, key=lambda u: u[1])[0], max(faster, key=lambda u: u[1])[0]


def uniform_ms_at(top1: float, curve: list[tuple[float, float]]) -> float:
    """The latency uniform needs for `top1`: walking its (ms, top-1) curve from the slowest
    model to the fastest, the ms where its top-1 first falls below `top1`, interpolated
    linearly (inf when even the slowest is less accurate, the fastest's ms when none is;
    the claim then reports nan: not met, nothing to compare)."""
    ordered = sorted(curve, reverse=True)
    if ordered[0][1] < top1:
        return float("inf")
    for (ms_hi, acc_hi), (ms_lo, acc_lo) in itertools.pairwise(ordered):
        if acc_lo < top1 <= acc_hi:
            return ms_lo + (top1 - acc_lo) / (acc_hi - acc_lo) * (ms_hi - ms_lo)
    return ordered[-1][0]


def adapt_name(iteration: dict[str, Any]) -> str:
    """The bench's name of the model of one adapt iteration (targets may share one)."""
    return f"adapt-iter{iteration['iteration']:02d}"


def _train_base(dataset: Any, path: Path) -> Any:
    from edgeprune import _tf
    from edgeprune.demo import compile_for_training
    from edgeprune.prune.rates import optimizer_rate

    base = build_model(dataset)
    steps = BASE_EPOCHS * math.ceil(len(dataset.x_train) / BATCH_SIZE)
    compile_for_training(base, optimizer_rate(BASE_LEARNING_RATE, DECAY, 0, steps))
    _tf.keras().utils.set_random_seed(0)
    with _tf.quiet_native_output():
        base.fit(
            dataset.x_train,
            dataset.y_train,
            epochs=BASE_EPOCHS,
            batch_size=BATCH_SIZE,
            verbose=0,
        )
    base.save(path)
    return base


def _predictions(
    report: Any, models: dict[str, Path], device: str, data: str, store: Path
) -> dict[str, float]:
    """The table's predicted latency (ms, reference conditions) of each Keras model; entries
    the adapt run did not need (uniform widths) are measured now, as adapt measures them."""
    from edgeprune.adapt.netadapt import Predictor
    from edgeprune.adapt.options import AdaptOptions
    from edgeprune.adapt.signatures import layer_signatures
    from edgeprune.adapt.table import Calibration, LatencyTable
    from edgeprune.adapt.widths import trace_model
    from edgeprune.models import load_keras_model
    from edgeprune.results.store import ResultsStore
    from edgeprune.workflows.adapt import DeviceMeter
    from edgeprune.workflows.bench import resolve_devices

    calibration = Calibration.from_dict(report.validation["calibration"])
    table = LatencyTable(report.table["path"], report.table["context"])
    meter = DeviceMeter(
        resolve_devices([device])[0],
        ResultsStore(store),
        AdaptOptions.create(
            target_speedup=max(TARGETS), data=data, device=device, table_runs=RUNS[device][0]
        ),
    )
    meter.set_reference(
        Path(report.workdir) / "input.tflite",
        report.baseline["reference_ms"],
        report.baseline["reference_fastest_ms"],
    )
    predictor = Predictor(table, meter.table, "none", calibration)
    out = {}
    for name, path in models.items():
        traced = trace_model(load_keras_model(path))
        signatures = layer_signatures(traced.graph, traced.keep_mask({}))
        predictor.fill(signatures)
        out[name] = predictor.predict(signatures)
    return out


@contextlib.contextmanager
def bench_devices(root: Path) -> Iterator[list[str]]:
    """The devices `BENCH_ADAPT_DEVICES` names (default local,pi4): `local`, and each emulated
    board behind its own sshd with the agent installed (`EDGEPRUNE_INVENTORY` points at them
    while the bench runs)."""
    names = [n.strip() for n in os.environ.get("BENCH_ADAPT_DEVICES", "local,pi4").split(",") if n]
    unknown = sorted(set(names) - {"local", *EMULATED})
    if unknown:
        raise SystemExit(f"BENCH_ADAPT_DEVICES names {unknown}; choose from local, pi4")
    boards = [n for n in names if n in EMULATED]
    if not boards:
        yield names
        return
    sys.path.insert(0, str(REPO / "tests"))
    from support.sshd import DeviceSpec, SshdFleet

    from edgeprune.fleet import load_inventory
    from edgeprune.fleet.install import install_agents

    specs = []
    for name in boards:
        profile, runtime = EMULATED[name]
        done = subprocess.run(
            [sys.executable, str(REPO / "tools" / "emulated_board.py"), "python", profile, runtime],
            capture_output=True,
            text=True,
            check=True,
        )
        specs.append(
            DeviceSpec(
                name=name, tags=["emulated"], python=done.stdout.strip(), kind="raspberry_pi"
            )
        )
    fleet = SshdFleet.start(root / "fleet", devices=specs)
    old = os.environ.get("EDGEPRUNE_INVENTORY")
    os.environ["EDGEPRUNE_INVENTORY"] = str(fleet.inventory_path)
    stopped = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the sshds stop too
    try:
        installed = install_agents(
            list(load_inventory(fleet.inventory_path).select(boards)), start_service=False
        )
        if installed.failed:
            raise SystemExit(f"agent install failed: {installed.failed[0].message}")
        yield names
    finally:
        signal.signal(signal.SIGTERM, stopped)
        if old is None:
            os.environ.pop("EDGEPRUNE_INVENTORY", None)
        else:
            os.environ["EDGEPRUNE_INVENTORY"] = old
        fleet.close()


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _adapt_on(device: str, base_path: Path, data: str, work: Path) -> Any:
    from edgeprune.workflows.adapt import adapt_model_file

    folder = work / device
    folder.mkdir(exist_ok=True)
    return adapt_model_file(
        base_path,
        folder / "adapted.keras",
        target_speedup=max(TARGETS),
        data=data,
        device=device,
        short_epochs=SHORT_EPOCHS,
        long_epochs=0,
        step_reduction=STEP_REDUCTION,
        step_decay=1.0,
        table_runs=RUNS[device][0],
        runs=RUNS[device][1],
        granularity=GRANULARITY,
        min_filters=GRANULARITY,
        max_iterations=MAX_ITERATIONS,
        store=work / "results.db",
        table=work / "table.db",
        progress=lambda line: print(f"   {device}: {line}", flush=True),
    )


def _picked(report: Any) -> dict[float, dict[str, Any]]:
    """Per target, the first iteration measured at or below it (else the last one)."""
    base_ms = report.baseline["reference_ms"]  # iterations are in its conditions
    picked = {}
    for target in TARGETS:
        hit = next(
            (i for i in report.iterations if i["measured"]["median_ms"] <= base_ms / target),
            None,
        )
        if hit is None and report.iterations:
            hit = report.iterations[-1]
        if hit is not None:
            picked[target] = hit
    return picked


def _long_tuned(
    reports: dict[str, Any],
    picked: dict[str, dict[float, dict[str, Any]]],
    dataset: Any,
    flags: dict[str, np.ndarray],
    work: Path,
) -> tuple[dict[str, Path], dict[str, int], dict[str, list[str]]]:
    """Each picked adapt iteration fine-tuned long-term (per seed) and scored into `flags`;
    returns the saved files, each model's fine-tuning epochs in all, and each device's model
    names."""
    files: dict[str, Path] = {}
    epochs: dict[str, int] = {}
    names: dict[str, list[str]] = {d: [] for d in reports}
    for device, hits in picked.items():
        for target, hit in hits.items():
            name = f"{device}-{adapt_name(hit)}"
            if name in files:  # a smaller target met by the same iteration
                continue
            files[name] = work / f"{name}.keras"
            model = Path(reports[device].workdir) / hit["model"]
            flags[name] = tuned_flags(model, dataset, LONG_EPOCHS, save=files[name])
            epochs[name] = LONG_EPOCHS + SHORT_EPOCHS * hit["iteration"]
            names[device].append(name)
            print(f"   {name} ({target:g}x): top-1 {flags[name].mean():.4f}", flush=True)
    return files, epochs, names


def _uniform_cuts(
    base: Any, dataset: Any, budgets: list[int], flags: dict[str, np.ndarray], work: Path
) -> dict[str, Path]:
    """Each ratio's cut of `base`, fine-tuned (per seed) once per budget from the cut, scored
    into `flags` as `uniform-R@EPOCHS` (and `uniform-R`: the longest); returns the saved
    files."""
    from edgeprune.channels.prune import prune_channels

    files: dict[str, Path] = {}
    for ratio in RATIOS:
        pruned, _ = prune_channels(
            base, ratio=ratio, granularity=GRANULARITY, min_filters=GRANULARITY
        )
        name = f"uniform-{ratio:g}"
        cut = work / f"{name}-cut.keras"
        pruned.save(cut)
        files[name] = work / f"{name}.keras"
        for budget in budgets:
            keep = files[name] if budget == budgets[-1] else None
            flags[f"{name}@{budget}"] = tuned_flags(cut, dataset, budget, save=keep)
        flags[name] = flags[f"{name}@{budgets[-1]}"]
        scores = ", ".join(f"{b} ep {flags[f'{name}@{b}'].mean():.4f}" for b in budgets)
        print(f"   {name}: top-1 {scores}", flush=True)
    return files


def run() -> list[Ratio]:
    from edgeprune.data import load_dataset
    from edgeprune.fleet.options import BenchOptions
    from edgeprune.models import load_keras_model
    from edgeprune.tflite.conversion import convert
    from edgeprune.workflows.bench import bench_models

    kept = os.environ.get("BENCH_ADAPT_WORK")
    work = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="bench-adapt-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        with bench_devices(work) as devices:
            data_path, ranking = work / "clutter.npz", work / "clutter-ranking.npz"
            if data_path.exists() != ranking.exists():
                raise SystemExit(
                    f"{work} holds an older bench's files; give a new BENCH_ADAPT_WORK"
                )
            if not data_path.exists():
                clutter_dataset(data_path, ranking)
            data = str(data_path)
            dataset = load_dataset(data)
            base_path = work / "base.keras"
            if base_path.exists():  # a kept bench: adapt resumes its finished iterations
                base = load_keras_model(base_path)
            else:
                base = _train_base(dataset, base_path)
            flags = {"base": correct_flags(base, dataset)}
            print(f"   base top-1 {flags['base'].mean():.4f}", flush=True)

            reports = {d: _adapt_on(d, base_path, str(ranking), work) for d in devices}
            picked = {d: _picked(r) for d, r in reports.items()}
            keras_files, epochs, adapt_models = _long_tuned(reports, picked, dataset, flags, work)
            uniform = _uniform_cuts(base, dataset, sorted(set(epochs.values())), flags, work)
            keras_files |= uniform
            epochs |= dict.fromkeys(uniform, max(epochs.values()))
            tflites = {}
            for name, path in keras_files.items():
                tflites[name] = work / f"{name}.tflite"
                convert(path, tflites[name])

            ratios = []
            for device, report in reports.items():
                reference = Path(report.workdir) / "input.tflite"
                own = {n: keras_files[n] for n in (*adapt_models[device], *uniform)}
                measured = bench_models(
                    [reference, *(tflites[n] for n in own)],
                    [device],
                    BenchOptions(runs=RUNS[device][2], round_runs=10),
                    store=work / "results.db",
                )
                by_stem = {Path(r["model"]).stem: r for r in measured.rows}
                rows = {n: by_stem[n] for n in own}
                factor = report.baseline["reference_ms"] / float(by_stem[reference.stem]["p50_ms"])
                predicted = _predictions(report, own, device, data, work / "results.db")
                ratios.extend(
                    _ratios(
                        device,
                        report,
                        picked[device],
                        rows,
                        flags,
                        epochs,
                        predicted,
                        factor,
                    )
                )
            return ratios
    finally:
        if kept or os.environ.get("EDGEPRUNE_BENCH_KEEP"):
            print(f"   kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _ratios(
    device: str,
    report: Any,
    picked: dict[float, dict[str, Any]],
    rows: dict[str, dict[str, Any]],
    flags: dict[str, np.ndarray],
    epochs: dict[str, int],
    predicted: dict[str, float],
    factor: float,
) -> list[Ratio]:
    base_ms = report.baseline["reference_ms"]
    ratios = []
    for target, hit in picked.items():
        ratios.extend(_against_uniform(device, target, hit, base_ms, rows, flags, epochs))
    errors = {}
    for name, row in rows.items():
        measured = float(row["p50_ms"]) * factor
        errors[name] = (predicted[name] - measured) / measured
    ratios.append(
        Ratio(
            f"{device}: lookup table, max |predicted - measured| / measured, final models",
            max(abs(e) for e in errors.values()),
            goal=0.10,
            detail={
                "per_model": errors,
                "loop_mean_abs_error": report.validation["mean_abs_error"],
                "loop_max_abs_error": report.validation["max_abs_error"],
                "calibration": report.validation["calibration"],
                "calibration_remeasured": report.table["remeasured"],
            },
        )
    )
    curve = {
        name: {
            "ms": row["p50_ms"],
            "ms_ci": row["p50_ci_ms"],
            "predicted_ms": predicted[name] / factor,
            "top1": float(flags[name].mean()),
            "finetune_epochs": epochs[name],
            "top1_by_epochs": {
                int(k.rpartition("@")[2]): float(f.mean())
                for k, f in flags.items()
                if k.startswith(f"{name}@")
            },
        }
        for name, row in rows.items()
    }
    curve["base"] = {"ms": base_ms / factor, "top1": float(flags["base"].mean())}
    ratios.append(
        Ratio(
            f"{device}: adapt iterations run (detail: latency ms [CI], top-1 per model)",
            float(len(report.iterations)),
            detail={
                "models": curve,
                "stop_reason": report.stop_reason,
                "trajectory": [
                    {
                        "iteration": i["iteration"],
                        "group": i["group"],
                        "width": i["width"],
                        "predicted_ms": i["predicted_ms"],
                        "measured_ms": i["measured"]["median_ms"],
                        "measured_ms_ci": i["measured"]["ci_ms"],
                        "top1_short_tuned": i["top1"],
                    }
                    for i in report.iterations
                ],
            },
        )
    )
    return ratios


def _against_uniform(
    device: str,
    target: float,
    hit: dict[str, Any],
    base_ms: float,
    rows: dict[str, dict[str, Any]],
    flags: dict[str, np.ndarray],
    epochs: dict[str, int],
) -> list[Ratio]:
    """Claims 1 and 2 for the adapt model of `target` (see the module's doc)."""
    name = f"{device}-{adapt_name(hit)}"
    names = [u for u in rows if u.startswith("uniform-")]
    # the uniform cuts as scored after as many fine-tuning epochs as this adapt model had
    flags = {**flags, **{u: flags[f"{u}@{epochs[name]}"] for u in names}}
    ms = float(rows[name]["p50_ms"])
    pair = bracket(ms, [(u, float(rows[u]["p50_ms"])) for u in names])
    detail: dict[str, Any] = {
        "model": name,
        "iteration": hit["iteration"],
        "target_ms": base_ms / target,
        "reached_in_loop": hit["measured"]["median_ms"] <= base_ms / target,
        "adapt_ms": ms,
        "adapt_ms_ci": rows[name]["p50_ci_ms"],
        "adapt_top1": float(flags[name].mean()),
        "finetune_epochs": epochs[name],
    }
    if pair is None:
        detail["bracket"] = "adapt's latency is outside the uniform curve"
        diff, ci = float("nan"), [float("nan"), float("nan")]
    else:
        slow, fast = pair
        ms_slow, ms_fast = float(rows[slow]["p50_ms"]), float(rows[fast]["p50_ms"])
        weight = (ms - ms_fast) / (ms_slow - ms_fast) if ms_slow > ms_fast else 1.0

        def at_same_ms(acc: dict[str, float]) -> float:
            return acc[name] - (acc[fast] + weight * (acc[slow] - acc[fast]))

        def over_slower(acc: dict[str, float]) -> float:
            return acc[name] - acc[slow]

        trio = {k: flags[k] for k in (name, slow, fast)}
        diff, ci = paired_bootstrap(at_same_ms, trio)
        vs_slow, vs_slow_ci = paired_bootstrap(over_slower, trio)
        detail |= {
            "uniform_slower": slow,
            "uniform_slower_ms": ms_slow,
            "uniform_slower_ms_ci": rows[slow]["p50_ci_ms"],
            "uniform_slower_top1": float(flags[slow].mean()),
            "uniform_faster": fast,
            "uniform_faster_ms": ms_fast,
            "uniform_faster_ms_ci": rows[fast]["p50_ci_ms"],
            "uniform_faster_top1": float(flags[fast].mean()),
            "interpolation_weight_of_slower": weight,
            "points_vs_uniform_slower": vs_slow * 100,
            "points_vs_uniform_slower_ci": [v * 100 for v in vs_slow_ci],
        }
    detail["points_ci"] = [v * 100 for v in ci]

    def speedup(acc: dict[str, float]) -> float:
        curve = [(float(rows[u]["p50_ms"]), acc[u]) for u in names]
        return uniform_ms_at(acc[name], curve) / ms

    value, value_ci = paired_bootstrap(speedup, {k: flags[k] for k in (name, *names)})
    speed_detail: dict[str, Any] = {"ci": value_ci}
    if not np.isfinite(value):  # no uniform cut is as accurate: no latency to compare
        best = max(float(flags[u].mean()) for u in names)
        speed_detail["note"] = f"no uniform cut reaches adapt's top-1 (best {best:.4f})"
        value = float("nan")
    return [
        Ratio(
            f"{device}: adapt {target:g}x, top-1 points over uniform at the same measured latency",
            diff * 100,
            goal=1.0,
            higher_is_better=True,
            detail=detail,
        ),
        Ratio(
            f"{device}: adapt {target:g}x, uniform latency / adapt latency at the same top-1",
            value,
            goal=1.2,
            higher_is_better=True,
            detail=speed_detail,
        ),
    ]
