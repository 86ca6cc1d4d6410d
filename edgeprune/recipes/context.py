"""What the host stages share: the run's tf.distribute strategy and the recipe's datasets.

Anything that creates or trains weights runs inside `StageContext.scope()`, i.e. under the
strategy (`default`: this one device; `mirrored`: every GPU of the host), and Keras'
global state is cleared afterwards so a long sweep does not grow without bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune import _tf
from edgeprune.data import Dataset, load_dataset
from edgeprune.errors import UserError
from edgeprune.recipes.loader import Recipe

STRATEGIES = ("default", "mirrored")


def make_strategy(name: str) -> Any:
    """The tf.distribute strategy fine-tuning runs under ('default' = this one device)."""
    if name not in STRATEGIES:
        raise UserError(
            f"strategy {name!r} is not one of {', '.join(STRATEGIES)}", params=("strategy",)
        )
    tf = _tf.tf()
    if name == "mirrored":
        with _tf.quiet_native_output():
            return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@dataclass
class RecipeData:
    """The recipe's datasets, loaded once: train, validation samples, calibration samples."""

    recipe: Recipe
    _loaded: dict[str, Dataset] = field(default_factory=dict)

    def _load(self, part: str, image_size: tuple[int, int] | None) -> Dataset:
        spec = self.recipe.spec.data
        assert spec is not None
        value = getattr(spec, part) or spec.train
        resolved = self.recipe.dataset_spec(value)
        if resolved not in self._loaded:
            size = tuple(spec.image_size) if spec.image_size else image_size
            try:
                self._loaded[resolved] = load_dataset(resolved, image_size=size)  # type: ignore[arg-type]
            except UserError as exc:
                raise self.recipe.lines.error(("data", part), str(exc)) from None
        return self._loaded[resolved]

    def training(self, input_shape: tuple[Any, ...] | None = None) -> Dataset:
        """Train samples from data.train, validation samples from data.validation (or train's split)."""
        return self._with_validation("train", input_shape)

    def for_convert(self, input_shape: tuple[Any, ...] | None = None) -> Dataset:
        """Calibration samples as the 'train' part, validation samples for accuracy."""
        return self._with_validation("calibration", input_shape)

    def _with_validation(self, part: str, input_shape: tuple[Any, ...] | None) -> Dataset:
        size = _image_size(input_shape)
        samples = self._load(part, size)
        validation = self._load("validation", size)
        return Dataset(
            samples.name,
            samples.x_train,
            samples.y_train,
            validation.x_val,
            validation.y_val,
            samples.class_names or validation.class_names,
            ground_truth=validation.ground_truth,  # detection: the boxes of validation.x_val
        )


def _image_size(input_shape: tuple[Any, ...] | None) -> tuple[int, int] | None:
    if input_shape and len(input_shape) == 4 and input_shape[1] and input_shape[2]:
        return int(input_shape[1]), int(input_shape[2])
    return None


@dataclass
class StageContext:
    recipe: Recipe
    strategy_name: str = "default"
    input_shape: tuple[Any, ...] | None = None  # the base model's, once it is known
    task: Any = None  # the run's Task once a stage scored with it (`recipes.scoring`)
    base_dir: Path | None = None  # the base stage's directory, once it is built or cached
    _strategy: Any = None
    _data: RecipeData | None = None

    @property
    def strategy(self) -> Any:
        if self._strategy is None:
            self._strategy = make_strategy(self.strategy_name)
        return self._strategy

    @property
    def data(self) -> RecipeData:
        if self.recipe.spec.data is None:
            raise UserError(f"{self.recipe.path}: this step needs data; add data: to the recipe")
        if self._data is None:
            self._data = RecipeData(self.recipe)
        return self._data

    def strategy_info(self) -> dict[str, Any]:
        """What trained the model (kept in the stage record): strategy class and replicas."""
        return {
            "name": type(self.strategy).__name__,
            "replicas": int(self.strategy.num_replicas_in_sync),
        }

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Create and train weights under the strategy; free Keras' global state afterwards."""
        try:
            with self.strategy.scope():
                yield
        finally:
            _tf.keras().backend.clear_session()
