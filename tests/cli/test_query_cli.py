"""``causalvae query`` end to end on the tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from causalvae.checkpoint import CONFIG_FILE, atomic_write_json
from causalvae.data.loader import load_dsprites
from causalvae.data.spec import FACTOR_NAMES, SHAPE_NAMES

METRIC_KEYS = {
    "iou_sample_vs_oracle",
    "iou_probability_map_vs_oracle",
    "reconstruction_iou",
}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def write_png(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray((pixels * 255).astype(np.uint8), mode="L").save(path)
    return path


# -- counterfactual -----------------------------------------------------------------


def test_counterfactual_by_index(
    run_cli, tiny_checkpoint: Path, tiny_data_file: Path, tmp_path: Path
) -> None:
    dataset = load_dsprites(tiny_data_file)
    classes = dataset.classes[5]
    target = (int(classes[0]) + 1) % 3

    result = run_cli(
        "query",
        "counterfactual",
        tiny_checkpoint,
        "--index",
        5,
        "--do",
        f"shape={SHAPE_NAMES[target]}",
        "-o",
        tmp_path,
    )

    answer = read_json(tmp_path / "counterfactual.json")
    assert (tmp_path / "counterfactual.png").is_file()
    assert answer["input"] == f"{tiny_data_file.resolve()}[5]"
    assert answer["intervention"] == {"shape": target}
    assert answer["factor_source"] == {name: "dataset" for name in FACTOR_NAMES}
    factual = answer["factual_factors"]["classes"]
    assert [factual[name] for name in FACTOR_NAMES] == classes.tolist()
    counterfactual = answer["counterfactual_factors"]["classes"]
    assert counterfactual == {**factual, "shape": target}
    assert answer["counterfactual_factors"]["shape"] == SHAPE_NAMES[target]
    assert set(answer["metrics"]) == METRIC_KEYS
    assert all(0 <= value <= 1 for value in answer["metrics"].values())
    metrics = answer["metrics"]
    assert (
        f"IoU against the oracle image: {metrics['iou_sample_vs_oracle']:.3f} (sample)"
        in result.stdout
    )
    reconstruction = f"{metrics['reconstruction_iou']:.3f}"
    assert f"IoU of the factual reconstruction: {reconstruction}" in result.stdout
    poorly = "reconstructs this image poorly" in result.stderr
    assert poorly == (metrics["reconstruction_iou"] < 0.5)


def test_counterfactual_from_png(
    run_cli, tiny_checkpoint: Path, tiny_data_file: Path, tmp_path: Path
) -> None:
    pixels = load_dsprites(tiny_data_file).images[7]
    image = write_png(tmp_path / "sprite.png", pixels)

    run_cli(
        "query",
        "counterfactual",
        tiny_checkpoint,
        "--image",
        image,
        "--do",
        "pos_x=3",
        "--factors",
        "shape=heart",
        "-o",
        tmp_path / "answer",
    )

    answer = read_json(tmp_path / "answer" / "counterfactual.json")
    assert answer["input"] == str(image)
    assert answer["factor_source"]["shape"] == "given"
    for name in FACTOR_NAMES[1:]:
        assert answer["factor_source"][name] == "inferred"
    assert answer["factual_factors"]["classes"]["shape"] == 2
    assert answer["counterfactual_factors"]["classes"]["pos_x"] == 3
    assert answer["counterfactual_factors"]["classes"]["shape"] == 2


def test_counterfactual_with_refinement_and_seed(
    run_cli, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    arguments = ("query", "counterfactual", tiny_checkpoint, "--index", 0)
    arguments += ("--do", "scale=0.5", "--refine-steps", 2, "--seed", 4)

    run_cli(*arguments, "-o", tmp_path / "first")
    run_cli(*arguments, "-o", tmp_path / "second")

    first = read_json(tmp_path / "first" / "counterfactual.json")
    second = read_json(tmp_path / "second" / "counterfactual.json")
    assert first == second
    assert first["refine_steps"] == 2
    assert first["seed"] == 4
    assert first["counterfactual_factors"]["classes"]["scale"] == 0


def test_counterfactual_rejects_wrong_size_png(
    run_cli, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    image = write_png(tmp_path / "small.png", np.zeros((32, 48), np.uint8))

    result = run_cli(
        "query",
        "counterfactual",
        tiny_checkpoint,
        "--image",
        image,
        "--do",
        "shape=heart",
        "-o",
        tmp_path / "answer",
        exit_code=2,
    )

    assert "48x32" in result.output
    assert "64x64 is required" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "answer").exists()


def test_counterfactual_rejects_non_png(
    run_cli, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    image = tmp_path / "notes.png"
    image.write_text("not an image")

    result = run_cli(
        "query",
        "counterfactual",
        tiny_checkpoint,
        "--image",
        image,
        "--do",
        "shape=heart",
        "-o",
        tmp_path / "answer",
        exit_code=2,
    )

    assert "not a readable PNG image" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--index", 0, "--do", "shap=heart"), "unknown factor 'shap'"),
        (("--index", 0, "--do", "shape=circle"), "circle"),
        (("--index", 0, "--do", "pos_x=32"), "pos_x"),
        (("--index", 0, "--do", "shape=heart", "--factors", "colour=1"), "'colour'"),
        (("--do", "shape=heart"), "give exactly one of --index and --image"),
        (("--index", 240, "--do", "shape=heart"), "index 240 is out of range"),
        (("--index", 0), "--do"),
    ],
    ids=[
        "misspelled",
        "unknown-shape",
        "position-range",
        "unknown-known-factor",
        "no-image",
        "index-range",
        "no-intervention",
    ],
)
def test_counterfactual_rejects_invalid_requests(
    run_cli, tiny_checkpoint: Path, tmp_path: Path, arguments: tuple, message: str
) -> None:
    result = run_cli(
        "query",
        "counterfactual",
        tiny_checkpoint,
        *arguments,
        "-o",
        tmp_path / "answer",
        exit_code=2,
    )

    assert message in result.output
    assert "Traceback" not in result.output


def test_counterfactual_needs_data_when_moved(
    run_cli, checkpoint_copy: Path, tiny_data_file: Path, tmp_path: Path
) -> None:
    config = read_json(checkpoint_copy / CONFIG_FILE)
    config["data"]["path"] = str(tmp_path / "moved.npz")
    atomic_write_json(checkpoint_copy / CONFIG_FILE, config)
    arguments = ("query", "counterfactual", checkpoint_copy, "--index", 1)
    arguments += ("--do", "scale=1", "-o", tmp_path / "answer")

    failed = run_cli(*arguments, exit_code=2)
    run_cli(*arguments, "--data", tiny_data_file)

    assert "pass --data FILE" in failed.output
    assert (tmp_path / "answer" / "counterfactual.json").is_file()


def test_counterfactual_rejects_missing_checkpoint(run_cli, tmp_path: Path) -> None:
    result = run_cli(
        "query",
        "counterfactual",
        tmp_path / "absent",
        "--index",
        0,
        "--do",
        "shape=heart",
        "-o",
        tmp_path / "answer",
        exit_code=2,
    )

    assert "absent" in result.output


# -- intervene and condition --------------------------------------------------------


@pytest.mark.parametrize("num_samples", [1, 4])
def test_intervene_sets_factors(
    run_cli, tiny_checkpoint: Path, tmp_path: Path, num_samples: int
) -> None:
    result = run_cli(
        "query",
        "intervene",
        tiny_checkpoint,
        "--do",
        "shape=heart,pos_x=3",
        "-n",
        num_samples,
        "-o",
        tmp_path,
    )

    answer = read_json(tmp_path / "intervene.json")
    assert (tmp_path / "intervene.png").is_file()
    assert answer["query"] == "intervene"
    assert answer["assignment"] == {"shape": 2, "pos_x": 3}
    assert answer["num_samples"] == num_samples
    assert answer["factor_counts"]["shape"] == {"2": num_samples}
    assert answer["factor_counts"]["pos_x"] == {"3": num_samples}
    assert answer["class_labels"]["shape"] == {"2": "heart"}
    assert answer["class_labels"]["pos_x"] == {"3": "3"}
    assert set(answer["class_labels"]["scale"]) == set(answer["factor_counts"]["scale"])
    for name in FACTOR_NAMES:
        assert sum(answer["factor_counts"][name].values()) == num_samples
    assert "intervene:" in result.stdout


def test_condition_keeps_evidence(run_cli, tiny_checkpoint: Path, tmp_path) -> None:
    run_cli(
        "query",
        "condition",
        tiny_checkpoint,
        "--given",
        "shape=ellipse",
        "--given",
        "pos_y=#7",
        "-n",
        3,
        "--seed",
        2,
        "-o",
        tmp_path,
    )

    answer = read_json(tmp_path / "condition.json")
    assert (tmp_path / "condition.png").is_file()
    assert answer["query"] == "condition"
    assert answer["assignment"] == {"shape": 1, "pos_y": 7}
    assert answer["factor_counts"]["shape"] == {"1": 3}
    assert answer["factor_counts"]["pos_y"] == {"7": 3}
    assert answer["seed"] == 2


def test_sampling_queries_follow_seed(run_cli, tiny_checkpoint: Path, tmp_path) -> None:
    arguments = ("query", "intervene", tiny_checkpoint, "--do", "scale=1", "-n", 6)

    run_cli(*arguments, "--seed", 1, "-o", tmp_path / "a")
    run_cli(*arguments, "--seed", 1, "-o", tmp_path / "b")

    first = read_json(tmp_path / "a" / "intervene.json")
    assert first == read_json(tmp_path / "b" / "intervene.json")


@pytest.mark.parametrize(
    ("command", "option"), [("intervene", "--do"), ("condition", "--given")]
)
def test_sampling_queries_name_misspelled_factor(
    run_cli, tiny_checkpoint: Path, tmp_path: Path, command: str, option: str
) -> None:
    result = run_cli(
        "query",
        command,
        tiny_checkpoint,
        option,
        "scael=1",
        "-o",
        tmp_path,
        exit_code=2,
    )

    assert "unknown factor 'scael'" in result.output
    assert not (tmp_path / f"{command}.json").exists()


@pytest.mark.parametrize("command", ["intervene", "condition"])
def test_sampling_queries_need_assignment(
    run_cli, tiny_checkpoint: Path, tmp_path: Path, command: str
) -> None:
    result = run_cli("query", command, tiny_checkpoint, "-o", tmp_path, exit_code=2)

    assert "Missing option" in result.output


def test_counterfactual_rejects_blank_png(
    run_cli, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    image = write_png(tmp_path / "black.png", np.zeros((64, 64), np.uint8))

    result = run_cli(
        "query",
        "counterfactual",
        tiny_checkpoint,
        "--image",
        image,
        "--do",
        "shape=heart",
        "-o",
        tmp_path / "answer",
        exit_code=2,
    )

    assert "no pixel brighter than --threshold 0.5" in result.output
    assert not (tmp_path / "answer").exists()


def test_sample_grid_titled_with_query(
    run_cli, tiny_checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:
    from causalvae import figures

    titles = []
    original = figures.save_image_grid

    def recording(*args, **kwargs):
        titles.append(kwargs.get("suptitle"))
        return original(*args, **kwargs)

    monkeypatch.setattr(figures, "save_image_grid", recording)
    run_cli(
        "query",
        "intervene",
        tiny_checkpoint,
        "--do",
        "shape=heart",
        "-n",
        2,
        "-o",
        tmp_path / "do",
    )
    run_cli(
        "query",
        "condition",
        tiny_checkpoint,
        "--given",
        "scale=1",
        "-n",
        2,
        "-o",
        tmp_path / "given",
    )

    assert titles == ["2 samples, do(shape=heart)", "2 samples, given scale=1.00"]
