"""``causalvae evaluate`` end to end on the tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from causalvae.checkpoint import CONFIG_FILE, MODEL_FILE, atomic_write_json
from causalvae.data.spec import FACTOR_NAMES

METRIC_KEYS = {
    "num_images",
    "heldout_neg_elbo",
    "reconstruction_iou",
    "label_accuracy",
    "label_accuracy_encoder",
    "counterfactual_iou",
    "counterfactual_iou_probability_map",
    "counterfactual_iou_inferred_factors",
    "effectiveness",
    "composition_l1",
    "composition_l1_probability_map",
    "reversibility_l1",
    "reversibility_l1_mean",
}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_evaluate_writes_metrics_next_to_checkpoint(
    run_cli, checkpoint_copy: Path
) -> None:
    result = run_cli("evaluate", checkpoint_copy, "--num-images", 2)

    metrics = read_json(checkpoint_copy / "metrics.json")
    assert set(metrics) == METRIC_KEYS
    assert metrics["num_images"] == 2
    assert set(metrics["counterfactual_iou"]) == set(FACTOR_NAMES)
    lines = result.stdout.splitlines()
    assert lines[0] == f"held-out -ELBO: {metrics['heldout_neg_elbo']:.2f} nats/image"
    assert lines[1] == f"reconstruction IoU: {metrics['reconstruction_iou']:.3f}"
    for name in FACTOR_NAMES:
        value = metrics["counterfactual_iou"][name]
        assert f"counterfactual IoU, do({name}): {value:.3f}" in lines
    assert lines[-1] == f"metrics written to {checkpoint_copy / 'metrics.json'}"
    assert "counterfactuals on images 0-2 of 2" in result.stderr


def test_evaluate_writes_to_output(
    run_cli, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    target = tmp_path / "scores" / "metrics.json"

    run_cli(
        "-q",
        "evaluate",
        tiny_checkpoint,
        "--num-images",
        1,
        "--refine-steps",
        1,
        "--seed",
        3,
        "-o",
        target,
    )

    metrics = read_json(target)
    assert set(metrics) == METRIC_KEYS
    assert metrics["num_images"] == 1
    assert not (tiny_checkpoint / "metrics.json").exists()


def test_evaluate_quiet_hides_progress(
    run_cli, tiny_checkpoint: Path, tmp_path
) -> None:
    result = run_cli(
        "-q", "evaluate", tiny_checkpoint, "--num-images", 1, "-o", tmp_path / "m.json"
    )

    assert "counterfactuals on images" not in result.stderr
    assert "held-out -ELBO:" in result.stdout


def test_evaluate_needs_data_when_moved(
    run_cli, checkpoint_copy: Path, tiny_data_file: Path, tmp_path: Path
) -> None:
    config = read_json(checkpoint_copy / CONFIG_FILE)
    config["data"]["path"] = str(tmp_path / "moved.npz")
    atomic_write_json(checkpoint_copy / CONFIG_FILE, config)

    failed = run_cli("evaluate", checkpoint_copy, "--num-images", 1, exit_code=2)
    run_cli("evaluate", checkpoint_copy, "--num-images", 1, "--data", tiny_data_file)

    assert "moved.npz" in failed.output
    assert "pass the dSprites file with --data" in failed.output
    assert read_json(checkpoint_copy / "metrics.json")["num_images"] == 1


def test_evaluate_reports_damaged_checkpoint(run_cli, checkpoint_copy: Path) -> None:
    (checkpoint_copy / MODEL_FILE).write_bytes(b"damaged")

    result = run_cli("evaluate", checkpoint_copy, exit_code=2)

    assert str(checkpoint_copy / MODEL_FILE) in result.output
    assert "not a readable safetensors file" in result.output
    assert "Traceback" not in result.output


def test_evaluate_rejects_missing_checkpoint(run_cli, tmp_path: Path) -> None:
    result = run_cli("evaluate", tmp_path / "absent", exit_code=2)

    assert "absent" in result.output
