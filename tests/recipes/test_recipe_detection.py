"""A recipe over a detector recommends by COCO mAP@.5 (issue 15's acceptance): the shapes
detector dense, 50 % and 95 % pruned, each fp32 and int8, scored on COCO-format annotations
by pycocotools through the recipe's task; the pick is the best mAP@.5 among the variants
within the budget (detection has no subset scorer, so the point estimates decide)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support.detection_data import shapes_detector_path, shapes_val_json  # noqa: F401

RECIPE = """
name: det
model: {{file: det.keras}}
data: {{train: {data}}}
task: detection
decode: yolo
metric: map50
budget: 3
pipelines:
  dense: {{}}
  pruned:
    prune: {{method: oneshot, sparsity: [0.5, 0.95]}}
    convert: {{quantize: [none, int8]}}
devices: [local]
bench: {{runs: 3, warmup: 0}}
"""


def test_a_detection_recipe_recommends_by_map50(
    run_cli,
    write_recipe,
    tmp_path: Path,
    shapes_detector_path: Path,  # noqa: F811
    shapes_val_json: Path,  # noqa: F811
):
    shutil.copy(shapes_detector_path, tmp_path / "det.keras")
    recipe = write_recipe(RECIPE.format(data=shapes_val_json))
    outcome = run_cli("run", recipe, "--workdir", tmp_path / "work", "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)["report"]
    assert report["metric"]["name"] == "map50"
    assert report["metric"]["higher_is_better"] is True
    scores = {v["name"]: v["scores"]["map50"] for v in report["variants"]}
    assert all("map" in v["scores"] for v in report["variants"])
    baseline = report["baseline_score"]
    assert 0.5 < baseline <= 1.0  # the trained detector finds the shapes
    within = {n for n, s in scores.items() if baseline - s <= 0.03 + 1e-9}
    far = [n for n in scores if "sp0.95" in n]
    assert far and not set(far) & within, scores  # 95 % of the weights gone: over budget
    (device,) = report["devices"]
    rec = device["recommendation"]
    assert {e["variant"] for e in rec["excluded"]} == set(scores) - within
    choice = rec["choice"]["variant"]
    tied = set(rec["tied"]) or {choice}
    assert choice in within and scores[choice] == max(scores[n] for n in tied)
    markdown = (tmp_path / "work" / "report.md").read_text()
    assert "mAP" in markdown
