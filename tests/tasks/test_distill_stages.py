"""`--distill` in the stages that train: prune (gradual), channels, adapt, and recipes."""

from __future__ import annotations

import json
import zipfile

import pytest

from edgeprune.errors import UserError
from edgeprune.prune.options import PruneOptions
from edgeprune.prune.rates import COSINE, DISTILL_LEARNING_RATE, LEARNING_RATE
from edgeprune.tasks.options import DEFAULT_ALPHA, DEFAULT_TEMPERATURE

T, A = DEFAULT_TEMPERATURE, DEFAULT_ALPHA


@pytest.fixture
def write_recipe(tmp_path):
    def write(text: str):
        path = tmp_path / "recipe.yaml"
        path.write_text(text.lstrip("\n"))
        return path

    return write


def _compile_config(path) -> str:
    with zipfile.ZipFile(path) as archive:
        return json.dumps(json.loads(archive.read("config.json")).get("compile_config"))


def _digits_mlp():
    """A small softmax MLP on the 8x8 digits, seeded (no dropout or batch norm)."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def test_prune_distill_end_to_end(run_cli, demo_model_path, tmp_path):
    out = tmp_path / "distilled.keras"
    outcome = run_cli(
        "prune", demo_model_path, "-o", out, "--sparsity", "0.5", "--data", "digits",
        "--epochs", "1", "--distill", "--temperature", "2", "--alpha", "0.7", "--json",
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    result = json.loads(outcome.out)
    assert result["training"]["distillation"] == {"temperature": 2.0, "alpha": 0.7}
    assert result["training"]["learning_rate"] == DISTILL_LEARNING_RATE  # distill's defaults
    assert result["training"]["learning_rate_decay"] == COSINE
    assert result["accuracy"]["top1"] > 0.8, result["accuracy"]
    manifest = json.loads((tmp_path / "distilled.keras.json").read_text())
    assert manifest["options"]["distillation"] == {"temperature": 2.0, "alpha": 0.7}
    assert "istill" not in _compile_config(out)  # the plain task loss: loads with stock Keras
    import keras

    assert keras.models.load_model(out).loss is not None


def test_prune_distill_text_says_so(run_cli, demo_model_path, tmp_path):
    outcome = run_cli(
        "prune", demo_model_path, "-o", tmp_path / "d.keras", "--sparsity", "0.5",
        "--data", "digits", "--epochs", "1", "--distill",
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    assert f"distilled from the dense model (temperature {T:g}, alpha {A:g})" in outcome.out


def test_the_teacher_is_the_dense_model(digits):
    """At sparsity 0 with alpha 1 the student starts as its teacher (no dropout or batch
    norm to tell training from inference): the KL stays ~0, far below the same run's
    cross-entropy on the labels."""
    import keras

    from edgeprune.prune import prune_gradually

    dense = _digits_mlp()
    dense.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    dense.fit(digits.x_train, digits.y_train, epochs=2, verbose=0)
    losses = {}
    for distill in (False, True):
        model = keras.models.clone_model(dense)
        model.set_weights(dense.get_weights())
        keywords = {"distill": True, "alpha": 1.0} if distill else {}
        result = prune_gradually(
            model, digits, 0.0, epochs=1, learning_rate=1e-6, evaluate=False, **keywords
        )
        losses[distill] = result.history["loss"][0]
        assert (result.distillation is not None) == distill
    assert losses[True] < 1e-4 and losses[False] > 0.05, losses


def test_channels_distill_end_to_end(run_cli, demo_model_path, tmp_path):
    out = tmp_path / "thin.keras"
    outcome = run_cli(
        "channels", demo_model_path, "-o", out, "--ratio", "0.5", "--min-filters", "8",
        "--data", "digits", "--epochs", "1", "--distill", "--json",
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    result = json.loads(outcome.out)
    assert result["accuracy"]["distillation"] == {"temperature": T, "alpha": A}
    assert result["options"]["distillation"] == {"temperature": T, "alpha": A}
    assert "istill" not in _compile_config(out)


def test_python_prune_takes_distill(demo_model_path, digits):
    import edgeprune as ep

    result = ep.prune(demo_model_path, 0.5, data=digits, epochs=1, distill=True, alpha=0.2)
    assert result.training["distillation"] == {"temperature": T, "alpha": 0.2}
    assert result.training["learning_rate"] == DISTILL_LEARNING_RATE
    assert result.training["learning_rate_decay"] == COSINE


def test_distill_has_its_own_learning_rate_defaults():
    assert DISTILL_LEARNING_RATE != LEARNING_RATE
    plain = PruneOptions.create(0.9, data="digits")
    distilled = PruneOptions.create(0.9, data="digits", distill=True)
    assert (plain.learning_rate, plain.learning_rate_decay) == (LEARNING_RATE, "constant")
    assert (distilled.learning_rate, distilled.learning_rate_decay) == (
        DISTILL_LEARNING_RATE,
        COSINE,
    )
    for options in (plain, distilled, PruneOptions.create(0.9)):  # read back, they validate
        again = PruneOptions.create(**options.to_dict())
        assert again.learning_rate == options.learning_rate
        assert again.learning_rate_decay == options.learning_rate_decay


@pytest.mark.parametrize("rate", [1e-4, LEARNING_RATE])
def test_an_explicit_learning_rate_wins_over_distills_default(rate):
    chosen = PruneOptions.create(0.9, data="digits", distill=True, learning_rate=rate)
    assert (chosen.learning_rate, chosen.learning_rate_decay) == (rate, COSINE)
    held = PruneOptions.create(0.9, data="digits", distill=True, learning_rate_decay="constant")
    assert (held.learning_rate, held.learning_rate_decay) == (DISTILL_LEARNING_RATE, "constant")


def test_options_passed_on_take_the_defaults_of_the_distill_they_end_with():
    from edgeprune.api._params import with_options

    plain = PruneOptions.create(0.9, data="digits")
    later = PruneOptions.create(**with_options(plain, {"distill": True}))
    assert (later.learning_rate, later.learning_rate_decay) == (DISTILL_LEARNING_RATE, COSINE)
    given = PruneOptions.create(0.9, data="digits", learning_rate=1e-4)
    kept = PruneOptions.create(**with_options(given, {"distill": True}))
    assert (kept.learning_rate, kept.learning_rate_decay) == (1e-4, COSINE)


def test_a_misspelt_decay_is_one_line():
    with pytest.raises(UserError, match="learning_rate_decay 'step' is not one of") as caught:
        PruneOptions.create(0.9, data="digits", learning_rate_decay="step")
    assert caught.value.params == ("learning_rate_decay",)


@pytest.mark.parametrize(
    ("keywords", "last_rate"),
    [
        ({}, LEARNING_RATE),  # plain: constant
        ({"distill": True}, 0.0),  # distill: cosine to 0 by the last step
        ({"distill": True, "learning_rate_decay": "constant"}, DISTILL_LEARNING_RATE),
        ({"learning_rate_decay": "cosine", "learning_rate": 0.01}, 0.0),
    ],
)
def test_the_rate_the_optimizer_ends_at(digits, keywords, last_rate):
    """The decay is what Adam really ran: read back from the fitted optimizer, whose rate at
    the ramp's end is still the peak and at the last step is 0 under cosine."""

    from edgeprune.prune import prune_gradually

    model = _digits_mlp()
    model.compile(loss="sparse_categorical_crossentropy")
    result = prune_gradually(model, digits, 0.5, epochs=2, evaluate=False, **keywords)
    rate = model.optimizer.learning_rate
    schedule = getattr(model.optimizer, "_learning_rate", None)
    assert float(rate) == pytest.approx(last_rate, abs=1e-9)
    if last_rate == 0.0:
        peak = result.learning_rate
        assert float(schedule(result.schedule.end_step)) == pytest.approx(peak)
        assert float(schedule(result.schedule.end_step - 1)) == pytest.approx(peak)


def test_cli_explicit_learning_rate_wins_with_distill(run_cli, demo_model_path, tmp_path):
    outcome = run_cli(
        "prune", demo_model_path, "-o", tmp_path / "d.keras", "--sparsity", "0.5",
        "--data", "digits", "--epochs", "1", "--distill", "--learning-rate", "0.0005", "--json",
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    assert json.loads(outcome.out)["training"]["learning_rate"] == 0.0005


def test_one_shot_refuses_a_learning_rate_even_at_the_default_of_distill():
    with pytest.raises(UserError, match="learning_rate: only for gradual pruning"):
        PruneOptions.create(0.5, learning_rate=DISTILL_LEARNING_RATE)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prune", "--sparsity", "0.5", "--distill"], "--distill: only for gradual pruning"),
        (
            ["prune", "--sparsity", "0.5", "--data", "digits", "--temperature", "3"],
            "--temperature shape distillation; add --distill",
        ),
        (["channels", "--ratio", "0.5", "--distill"], "--distill teaches the fine-tune"),
        (["channels", "--ratio", "0.5", "--data", "digits", "--alpha", "0.1"], "--alpha shape"),
        (
            [
                "adapt",
                "--target-speedup",
                "2",
                "--data",
                "digits",
                "--distill",
                *("--long-epochs", "0"),
            ],
            "--long-epochs is 0",
        ),
    ],
)
def test_distill_mistakes_are_one_line(run_cli, tmp_path, argv, message):
    model = tmp_path / "in.keras"
    model.write_bytes(b"never loaded: the options are checked first")
    outcome = run_cli(argv[0], model, "-o", tmp_path / "o.keras", *argv[1:])
    assert outcome.code == 2, outcome.err
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.keras"]


def test_python_refuses_alpha_without_distill():
    from edgeprune.prune.options import PruneOptions

    with pytest.raises(UserError, match="alpha shape distillation") as caught:
        PruneOptions.create(0.5, data="digits", alpha=0.3)
    assert caught.value.params == ("alpha", "distill")


RECIPE = """
model: {demo: true, width: 8, train: {epochs: 1}}
data: digits
pipelines:
  a:
    prune: {sparsity: 0.5, epochs: 2, distill: %s}
    convert: {quantize: none}
  b:
    channels: {ratio: 0.5}
    finetune: {epochs: 1, distill: true}
    convert: {quantize: none}
"""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{temperature: 2, alpha: 0.25}", (True, 2.0, 0.25)),
        ("true", (True, T, A)),
        ("{alpha: 0.9}", (True, T, 0.9)),
        ("false", (False, T, A)),
    ],
)
def test_recipe_distill_key(write_recipe, value, expected):
    from edgeprune.recipes import load_recipe

    recipe = load_recipe(write_recipe(RECIPE % value))
    by_pipeline = {v.pipeline: v for v in recipe.variants}
    prune = by_pipeline["a"].steps[0].options
    assert (prune["distill"], prune["temperature"], prune["alpha"]) == expected
    finetune = by_pipeline["b"].steps[1].options
    assert (finetune["distill"], finetune["temperature"], finetune["alpha"]) == (True, T, A)
    # the prune stage builds its options from the step's (stages.run_prune): distill's rate
    given = {k: v for k, v in prune.items() if k != "method"}
    rate = PruneOptions.create(**given, data="digits").learning_rate
    assert rate == (DISTILL_LEARNING_RATE if expected[0] else LEARNING_RATE)


def test_recipe_learning_rate_wins_over_distills_default(write_recipe):
    from edgeprune.recipes import load_recipe

    text = RECIPE.replace("epochs: 2,", "epochs: 2, learning_rate: 0.0001,") % "true"
    prune = load_recipe(write_recipe(text)).variants[0].steps[0].options
    given = {k: v for k, v in prune.items() if k != "method"}
    assert PruneOptions.create(**given, data="digits").learning_rate == 1e-4


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{temp: 2}", "unknown key 'temp'"),
        ("{temperature: 0}", "greater than 0"),
        ("{alpha: 1.5}", "less than or equal to 1"),
    ],
)
def test_recipe_distill_mistakes_name_the_line(write_recipe, value, message):
    from edgeprune.recipes import load_recipe

    with pytest.raises(UserError, match=message) as caught:
        load_recipe(write_recipe(RECIPE % value))
    assert "recipe.yaml:5" in str(caught.value), str(caught.value)
