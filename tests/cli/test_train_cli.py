"""``causalvae train`` end to end with tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from causalvae import __version__
from causalvae.checkpoint import CONFIG_FILE, HISTORY_FILE, STATE_FILE

TINY = ("--hidden", 8, "--layers", 1, "--batch-size", 16, "--heldout", 20)
TINY += ("--device", "cpu")


def read_json(path: Path) -> object:
    return json.loads(path.read_text())


def test_train_writes_checkpoint(run_cli, tiny_data_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"

    result = run_cli(
        "train", "--data", tiny_data_file, "-o", output, "--steps", 3, *TINY
    )

    assert result.stdout.startswith("step 3: held-out -ELBO ")
    assert f"checkpoint in {output}" in result.stdout
    assert read_json(output / STATE_FILE)["step"] == 3
    config = read_json(output / CONFIG_FILE)
    assert config["model"]["architecture"] == "geometric"
    assert config["model"]["hidden"] == 8
    assert config["model"]["layers"] == 1
    assert config["train"]["steps"] == 3
    assert config["train"]["batch_size"] == 16
    assert config["data"]["heldout"] == 20
    assert config["data"]["path"] == str(tiny_data_file.resolve())
    assert read_json(output / HISTORY_FILE)[-1]["step"] == 3


def test_train_mlp_architecture(run_cli, tiny_data_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"

    run_cli(
        "train",
        "--data",
        tiny_data_file,
        "-o",
        output,
        "--steps",
        1,
        "--architecture",
        "mlp",
        "--z-dim",
        3,
        "--precision",
        "fp32",
        *TINY,
    )

    model = read_json(output / CONFIG_FILE)["model"]
    assert model["architecture"] == "mlp"
    assert model["z_dim"] == 3
    assert model["precision"] == "fp32"


def test_train_by_epochs(run_cli, tiny_data_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"

    # 220 training images in batches of 16: 14 steps per epoch, 4 for 0.25 epochs.
    run_cli("train", "--data", tiny_data_file, "-o", output, "--epochs", 0.25, *TINY)

    assert read_json(output / STATE_FILE)["step"] == 4


def test_train_resumes_run(run_cli, tiny_data_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    run_cli("train", "--data", tiny_data_file, "-o", output, "--steps", 2, *TINY)

    result = run_cli(
        "train",
        "--data",
        tiny_data_file,
        "-o",
        output,
        "--steps",
        4,
        "--resume",
        *TINY,
    )

    assert result.stdout.startswith("step 4: ")
    history = read_json(output / HISTORY_FILE)
    assert [record["step"] for record in history] == [2, 4]
    assert read_json(output / CONFIG_FILE)["train"]["steps"] == 4


def test_train_without_budget_fails(
    run_cli, tiny_data_file: Path, tmp_path: Path
) -> None:
    result = run_cli(
        "train", "--data", tiny_data_file, "-o", tmp_path / "run", *TINY, exit_code=2
    )

    assert "set a budget with --epochs, --steps or --minutes" in result.output
    assert not (tmp_path / "run").exists()


def test_resume_without_checkpoint_fails(
    run_cli, tiny_data_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "empty"
    output.mkdir()

    result = run_cli(
        "train",
        "--data",
        tiny_data_file,
        "-o",
        output,
        "--steps",
        2,
        "--resume",
        *TINY,
        exit_code=2,
    )

    assert str(output / STATE_FILE) in result.output
    assert "Traceback" not in result.output


def test_train_reports_missing_data_file(run_cli, tmp_path: Path) -> None:
    missing = tmp_path / "absent.npz"

    result = run_cli(
        "train", "--data", missing, "-o", tmp_path / "run", "--steps", 1, exit_code=2
    )

    assert str(missing) in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--steps", 0), "--steps"),
        (("--steps", 1, "--architecture", "conv"), "--architecture"),
        (("--steps", 1, "--precision", "fp16"), "--precision"),
        (("--steps", 1, "--learning-rate", 0), "--learning-rate"),
        (("--minutes", -1), "--minutes"),
        (("--steps", 1, "--device", "tpu"), "--device"),
    ],
)
def test_train_rejects_invalid_options(
    run_cli, tiny_data_file: Path, tmp_path: Path, arguments: tuple, message: str
) -> None:
    result = run_cli(
        "train", "--data", tiny_data_file, "-o", tmp_path, *arguments, exit_code=2
    )

    assert message in result.output


def test_quiet_hides_progress_bar(
    run_cli, tiny_data_file: Path, tmp_path: Path
) -> None:
    arguments = ("train", "--data", tiny_data_file, "--steps", 2, *TINY)

    loud = run_cli(*arguments, "-o", tmp_path / "loud")
    quiet = run_cli("-q", *arguments, "-o", tmp_path / "quiet")

    assert "2/2" in loud.stderr
    assert "2/2" not in quiet.stderr
    assert quiet.stdout.startswith("step 2: ")


def test_version_is_printed(run_cli) -> None:
    result = run_cli("--version")

    assert result.stdout.strip() == f"causalvae, version {__version__}"


def test_threads_below_one_are_rejected(run_cli) -> None:
    result = run_cli("--threads", 0, "train", "--help", exit_code=2)

    assert "--threads" in result.output


def test_train_refuses_to_overwrite_checkpoint(
    run_cli, tiny_data_file: Path, tmp_path: Path
) -> None:
    output = tmp_path / "run"
    common = ["train", "--data", tiny_data_file, "-o", output, "--heldout", 20]
    run_cli(*common, "--steps", 2)

    refused = run_cli(*common, "--steps", 3, exit_code=2)
    replaced = run_cli(*common, "--steps", 1, "--overwrite")

    assert "already contains a checkpoint" in refused.output
    assert "--resume" in refused.output
    assert "--resume" in refused.output
    assert "step 1:" in replaced.output


def test_train_interrupt_names_last_checkpoint(
    run_cli, tiny_data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import causalvae.cli._options as options

    def interrupt_after_step_3(self, info) -> None:
        if info["step"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(options.TrainingBar, "__call__", interrupt_after_step_3)
    output = tmp_path / "run"

    result = run_cli(
        "train",
        "--data",
        tiny_data_file,
        "-o",
        output,
        "--heldout",
        20,
        "--steps",
        6,
        "--eval-every",
        2,
        exit_code=2,
    )

    assert "last checkpoint" in result.output
    assert "at step 2" in result.output
    assert "--resume" in result.output


def test_progress_bar_postfix_matches_count(monkeypatch) -> None:
    from tqdm import tqdm

    from causalvae.cli._options import TrainingBar

    updates = []
    original = tqdm.update

    def recording(self, n=1):
        result = original(self, n)
        updates.append((self.n, self.postfix))
        return result

    monkeypatch.setattr(tqdm, "update", recording)
    bar = TrainingBar(steps=3, minutes=None, quiet=False)
    for step in (1, 2, 3):
        bar({"step": step, "elapsed": 0.1 * step, "loss": 1.0})
    bar.close()

    assert [count for count, _ in updates] == [1, 2, 3]
    for count, postfix in updates:
        assert f"step={count}" in postfix
