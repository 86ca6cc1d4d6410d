"""A model with the user's own layers, from the CLI: `--custom-objects FILE.py | pkg.module`.

The test writes the module (a Dense-like layer with a kernel and a parameter-free activation,
both registered with keras.saving.register_keras_serializable), trains a tiny model on digits
with it, and drives prune, convert, bench (on the `local` device), evaluate and inspect.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

LAYERS = '''
import keras


@keras.saving.register_keras_serializable(package="{package}")
class ScaledDense(keras.layers.Layer):
    """Dense-like: a kernel, a bias and a fixed output scale."""

    def __init__(self, units=8, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.scale = units, scale

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, x):
        return (keras.ops.matmul(x, self.kernel) + self.bias) * self.scale

    def get_config(self):
        return {{**super().get_config(), "units": self.units, "scale": self.scale}}


@keras.saving.register_keras_serializable(package="{package}")
class Swish(keras.layers.Layer):
    """No parameters: x * sigmoid(x)."""

    def call(self, x):
        return x * keras.ops.sigmoid(x)
'''


def _write_layers(folder: Path, name: str, package: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(LAYERS.format(package=package))
    return path


def _forget(package: str) -> None:
    """Drop the package's classes from Keras' global registry (as a fresh process would be)."""
    import keras

    registry = keras.saving.get_custom_objects()
    for key in [k for k in registry if k.startswith(f"{package}>")]:
        del registry[key]


def _build(layers_path: Path, digits, out: Path, package: str) -> Path:
    import importlib.util

    import keras

    spec = importlib.util.spec_from_file_location(f"build_{package}", layers_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keras.utils.set_random_seed(0)
    inputs = keras.Input(digits.x_train.shape[1:])
    x = keras.layers.Flatten()(inputs)
    x = module.ScaledDense(64, scale=0.5, name="scaled_dense")(x)
    x = module.Swish(name="swish")(x)
    outputs = keras.layers.Dense(digits.num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.x_train, digits.y_train, epochs=8, batch_size=64, verbose=0)
    model.save(out)
    _forget(package)
    return out


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory, digits):
    folder = tmp_path_factory.mktemp("custom")
    layers = _write_layers(folder, "my_layers", "ep_test_file")
    return _build(layers, digits, folder / "custom.keras", "ep_test_file"), layers


def test_without_custom_objects_one_line_names_the_class_and_the_flag(run_cli, tmp_path, digits):
    layers = _write_layers(tmp_path, "unseen_layers", "ep_test_unseen")
    model = _build(layers, digits, tmp_path / "unseen.keras", "ep_test_unseen")
    for args in (
        ("prune", model, "--sparsity", "0.5", "-o", tmp_path / "p.keras"),
        ("convert", model, "-o", tmp_path / "m.tflite"),
        ("evaluate", model, "--data", "digits"),
        ("inspect", model),
    ):
        outcome = run_cli(*args)
        assert outcome.code == 2, (args, outcome.err)
        lines = outcome.err.strip().splitlines()
        assert len(lines) == 1, outcome.err
        assert "'ScaledDense'" in lines[0] and "--custom-objects FILE.py" in lines[0], lines[0]
    assert not (tmp_path / "p.keras").exists() and not (tmp_path / "m.tflite").exists()


def test_prune_convert_bench_evaluate_from_the_cli(run_cli, custom_model, tmp_path):
    model, layers = custom_model
    pruned, tflite = tmp_path / "pruned.keras", tmp_path / "pruned.tflite"
    flag = ("--custom-objects", layers)

    outcome = run_cli(
        "prune", model, "--sparsity", "0.5", "--min-params", "0", "-o", pruned, "--json", *flag
    )
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    pruned_names = {k["layer"] for k in report["report"]["kernels"]}
    assert "logits" in pruned_names and "scaled_dense" not in pruned_names
    left = {item["layer"]: item for item in report["report"]["unknown_layers"]}
    assert left["scaled_dense"]["class_name"] == "ScaledDense", left
    assert left["scaled_dense"]["params"] == 64 * 64 + 64

    outcome = run_cli("convert", pruned, "-o", tflite, "--data", "digits", "--json", *flag)
    assert outcome.code == 0, outcome.err
    converted = json.loads(outcome.out)
    assert converted["accuracy"]["top1"] > 0.8, converted["accuracy"]
    assert abs(converted["accuracy"]["top1"] - converted["accuracy"]["source_top1"]) < 0.01

    outcome = run_cli(
        "evaluate", pruned, "--data", "digits", "--reference", tflite, "--json", *flag
    )
    assert outcome.code == 0, outcome.err
    evaluated = json.loads(outcome.out)
    assert evaluated["top1"] > 0.8
    assert evaluated["reference"]["max_abs_diff"] < 1e-3, evaluated["reference"]

    outcome = run_cli(
        "bench", tflite, "--device", "local", "--runs", "3", "--db", tmp_path / "r.db", "--json"
    )
    assert outcome.code == 0, outcome.err
    assert "pruned.tflite" in outcome.out

    outcome = run_cli("inspect", pruned, "--json", *flag)
    assert outcome.code == 0, outcome.err
    layers_seen = {layer["name"]: layer for layer in json.loads(outcome.out)["layers"]}
    assert layers_seen["scaled_dense"]["class_name"] == "ScaledDense"


def test_a_package_module_works_like_a_file(run_cli, tmp_path, digits, monkeypatch):
    package = tmp_path / "site" / "mypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    layers = _write_layers(package, "layers", "ep_test_pkg")
    model = _build(layers, digits, tmp_path / "pkg.keras", "ep_test_pkg")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    outcome = run_cli(
        "convert", model, "-o", tmp_path / "pkg.tflite", "--custom-objects", "mypkg.layers"
    )
    assert outcome.code == 0, outcome.err
    sys.modules.pop("mypkg.layers", None)
    sys.modules.pop("mypkg", None)


def test_bad_module_paths_are_one_line(run_cli, custom_model, tmp_path):
    model, _ = custom_model
    raising = tmp_path / "raising.py"
    raising.write_text("raise RuntimeError('cannot build the layers here')\n")
    cases = [
        (tmp_path / "nowhere.py", "is not a file"),
        ("no_such_pkg_xyz.layers", "is not installed or not on PYTHONPATH"),
        (raising, "RuntimeError: cannot build the layers here"),
        ("not a module!", "neither a .py file nor a dotted module name"),
    ]
    for spec, expected in cases:
        outcome = run_cli("convert", model, "-o", tmp_path / "x.tflite", "--custom-objects", spec)
        assert outcome.code == 2, (spec, outcome.err)
        lines = outcome.err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], lines
        assert "--custom-objects" in lines[0], lines[0]
    assert not (tmp_path / "x.tflite").exists()


def test_custom_objects_dict_and_unregistered_classes(tmp_path, digits):
    """An unregistered class is found as a Layer subclass of the module or in CUSTOM_OBJECTS."""
    import keras

    from edgeprune.models import collect_custom_objects, load_keras_model

    source = tmp_path / "plain_layers.py"
    source.write_text(
        LAYERS.replace('@keras.saving.register_keras_serializable(package="{package}")\n', "")
        .format()
        .replace("class Swish", "class _Swish")
        + "\nCUSTOM_OBJECTS = {'Swish': _Swish}\n"
    )
    found = collect_custom_objects(str(source))
    assert set(found) == {"ScaledDense", "_Swish", "Swish"}
    inputs = keras.Input((4,))
    outputs = found["Swish"](name="swish")(found["ScaledDense"](3, name="d")(inputs))
    path = tmp_path / "plain.keras"
    keras.Model(inputs, outputs).save(path)
    loaded = load_keras_model(path, custom_objects=str(source))
    sample = np.ones((2, 4), np.float32)
    assert loaded.predict(sample, verbose=0).shape == (2, 3)


def test_long_load_errors_are_never_cut_mid_word():
    from edgeprune.models import _sentences

    text = (
        "<class 'keras.src.models.functional.Functional'> could not be deserialized "
        "properly. Please ensure that components that are Python object instances (layers, "
        "models, etc.) returned by `get_config()` are explicitly deserialized in the model's "
        "`from_config()` method.\n\nconfig={...}"
    )
    short = _sentences(text, limit=120)
    assert text.startswith(short.removesuffix(" ...")) and len(short) <= 124
    assert short.endswith("properly.")
    one_word = _sentences("x" * 500, limit=100)
    assert one_word == "x" * 100 + " ..."
    words = _sentences("word " * 100, limit=42)
    assert words.endswith("word ...") and "wor " not in words


SUBCLASSED = """
import keras


@keras.saving.register_keras_serializable(package="ep_test_sub")
class TinyNet(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(8, 3)
        self.flat = keras.layers.Flatten()
        self.head = keras.layers.Dense(10)

    def call(self, x):
        return self.head(self.flat(self.conv(x)))
"""


def test_a_subclassed_model_is_pruned_through_its_kernels(run_cli, tmp_path):
    """One-shot masks work per variable; channels and conversion need the graph and say so."""
    import importlib.util

    source = tmp_path / "tiny_net.py"
    source.write_text(SUBCLASSED)
    spec = importlib.util.spec_from_file_location("build_tiny_net", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TinyNet()
    model(np.zeros((1, 8, 8, 1), np.float32))
    model.save(tmp_path / "sub.keras")
    flag = ("--custom-objects", source)

    pruned = tmp_path / "pruned.keras"
    outcome = run_cli(
        "prune", tmp_path / "sub.keras", "--sparsity", "0.5", "--min-params", "0",
        "-o", pruned, "--json", *flag,
    )  # fmt: skip
    assert outcome.code == 0, outcome.err
    kernels = {k["layer"]: k for k in json.loads(outcome.out)["report"]["kernels"]}
    assert sorted(k["class_name"] for k in kernels.values()) == ["Conv2D", "Dense"], kernels
    assert all(abs(k["zeros"] / k["size"] - 0.5) < 0.01 for k in kernels.values())

    outcome = run_cli("channels", pruned, "--ratio", "0.3", "-o", tmp_path / "c.keras", *flag)
    assert outcome.code == 2 and "subclassed keras.Model" in outcome.err
    outcome = run_cli("convert", pruned, "-o", tmp_path / "sub.tflite", *flag)
    assert outcome.code == 2 and len(outcome.err.strip().splitlines()) == 1, outcome.err
    assert "subclassed keras.Model (TinyNet) without inputs" in outcome.err
    assert "model.export(DIR)" in outcome.err
    assert not (tmp_path / "sub.tflite").exists()


def test_a_recipe_names_its_custom_objects_once(run_cli, custom_model, tmp_path):
    """`custom_objects:` (relative to the recipe) reaches every step that loads the model."""
    import shutil

    model, layers = custom_model
    _forget("ep_test_file")  # as in a fresh process: only the recipe's key can bring them
    folder = tmp_path / "recipe"
    folder.mkdir()
    shutil.copy(model, folder / "custom.keras")
    shutil.copy(layers, folder / "my_layers.py")
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        "name: custom\n"
        "model: {file: custom.keras}\n"
        "custom_objects: my_layers.py\n"
        "data: digits\n"
        "pipelines:\n"
        "  dense: {}\n"
        "  pruned:\n"
        "    prune: {method: oneshot, sparsity: 0.5, min_params: 0}\n"
        "devices: [local]\n"
        "bench: {runs: 3, warmup: 0}\n"
    )
    outcome = run_cli("run", recipe, "--workdir", tmp_path / "work", "--json")
    assert outcome.code == 0, outcome.err
    result = json.loads(outcome.out)
    assert result["stages_built"] == 4, result
    assert result["measurements_made"] == 2, result


def test_a_module_that_lacks_the_class_is_named(run_cli, tmp_path, digits):
    layers = _write_layers(tmp_path, "lacking_layers", "ep_test_lacking")
    model = _build(layers, digits, tmp_path / "lacking.keras", "ep_test_lacking")
    other = tmp_path / "other.py"
    other.write_text("VALUE = 1\n")
    outcome = run_cli("inspect", model, "--custom-objects", other)
    assert outcome.code == 2
    line = outcome.err.strip()
    assert "\n" not in line and "'ScaledDense'" in line, line
    assert f"{str(other)!r} does not define or register" in line, line


def test_a_legacy_h5_with_unregistered_layers(tmp_path):
    """.h5 looks classes up by plain name: the module's Layer subclasses are handed over."""
    import importlib.util

    import keras

    from edgeprune.errors import UserError
    from edgeprune.models import load_keras_model

    source = tmp_path / "h5_layers.py"
    source.write_text(
        LAYERS.replace('@keras.saving.register_keras_serializable(package="{package}")\n', "")
        .format()
        .replace("class ScaledDense", "class H5Dense")
    )
    spec = importlib.util.spec_from_file_location("build_h5_layers", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, module.Swish()(module.H5Dense(3)(inputs)))
    model.save(tmp_path / "legacy.h5")
    with pytest.raises(UserError, match="uses the custom object 'H5Dense'"):
        load_keras_model(tmp_path / "legacy.h5")
    loaded = load_keras_model(tmp_path / "legacy.h5", custom_objects=str(source))
    sample = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(
        loaded.predict(sample, verbose=0), model.predict(sample, verbose=0), atol=1e-6
    )
