"""`facehub train|eval|bench METHOD`: the config is validated before anything is launched, failures the user can
fix are one line and a non-zero exit (passed through from the launched processes), and `--help` shows the method's
own keys or options."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from facehub import methods
from facehub.apps.cli import main
from facehub.trainers import cli as trainers_cli
from facehub.trainers.run import COMMAND_ENV

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def launches(monkeypatch):
    """Record `accelerate launch` instead of running it; the run's exit status is 3."""
    calls = []

    def fake_launch(accelerate_args, env):
        calls.append((accelerate_args, env))
        return 3

    monkeypatch.setattr(trainers_cli, "launch", fake_launch)
    return calls


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(("argv", "message"), [
    (["depthnet", "losses.gan_wieght=0.1", "--cpu"],
     "Unknown config key `losses.gan_wieght` for method depthnet; did you mean `losses.gan_weight`?"),
    (["depthnet", "--num_processes", "2", "model.hidden_sizes=wide"],
     "Config key `model.hidden_sizes` for method depthnet expects list[int] | null, got 'wide' (str)."),
    (["prn_dense", "--preset", "tiny"], "Unknown preset 'tiny' for method prn_dense; known presets: paper, "
     "cpu-small, default, default-aflw, default-aflw-4k."),
    (["cyclegan", "model.cycle_loss_weight=5"],
     "Unknown config key `model.cycle_loss_weight` for method cyclegan; did you mean `losses.cycle_loss_weight`?"),
    (["depthnet", "--config", "/no/such/run.yaml"], "Config file /no/such/run.yaml does not exist"),
    (["nerf"], f"Unknown method 'nerf'. Known methods: {', '.join(methods.names())}."),
    (["depthnet", "--gradient_accumulation_steps", "0"],
     "Got '0' for --gradient_accumulation_steps; give a positive integer."),
    ([], "Give the method to train"),
    (["depthnet", "run.yaml"], "Unexpected argument 'run.yaml' (a config file goes after --config); give the config "
     "file as --config FILE and settings as key=value."),
    (["depthnet", "--num_procs", "2"], "Neither facehub train nor accelerate launch knows --num_procs"),
])
def test_a_bad_config_is_one_line_and_exit_2_without_launching(argv, message, launches, capsys):
    assert main(["train", *argv]) == 2
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert len(lines) == 1 and lines[0].startswith(f"facehub train: error: {message}"), captured.err
    assert "launching" not in captured.out and launches == []


def test_a_valid_config_launches_once_and_passes_the_exit_status_through(tmp_path, launches, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"method": "depthnet", "preset": "cpu-small", "output_dir": str(tmp_path)}))
    argv = ["train", "depthnet", "--config", str(config), "--num_processes", "2", "--mixed_precision", "bf16",
            "losses.gan_weight=0.01", "--gradient_accumulation_steps=4", "--resume"]
    assert main(argv) == 3  # the run's own status
    (accelerate_args, env), = launches
    assert accelerate_args[:5] == ["--num_processes", "2", "--mixed_precision", "bf16", "--gradient_accumulation_steps=4"]
    assert accelerate_args[5:] == ["-m", "facehub.trainers.run", "depthnet", "--config", str(config), "--resume",
                                   "losses.gan_weight=0.01"]
    assert env[COMMAND_ENV] == (f"facehub train depthnet --config {config} --resume --num_processes 2 "
                                "--mixed_precision bf16 losses.gan_weight=0.01 --gradient_accumulation_steps=4")
    # accelerate launch exports the accumulation only for DeepSpeed: facehub train hands it to the processes
    assert env["ACCELERATE_GRADIENT_ACCUMULATION_STEPS"] == "4"
    assert "launching: accelerate launch --num_processes 2 --mixed_precision bf16 --gradient_accumulation_steps=4 -m" in (
        capsys.readouterr().out)
    launches.clear()
    assert main(["train", "prn_dense", "--preset", "cpu-small", "max_steps=5"]) == 3
    assert launches[0][0][-4:] == ["prn_dense", "--preset", "cpu-small", "max_steps=5"]


def test_the_launcher_returns_the_failed_workers_status_without_a_traceback(monkeypatch, capsys):
    import accelerate.commands.launch as accelerate_launch

    class ChildFailed(Exception):  # the shape of torchrun's ChildFailedError
        def __init__(self, code):
            super().__init__("worker failed")
            self.failures = {1: type("Failure", (), {"exitcode": code})()}

    def one_process(args):
        raise subprocess.CalledProcessError(returncode=2, cmd=["python"])

    def two_processes(args):
        raise ChildFailed(1)

    def interrupted(args):  # torchrun forwarded Ctrl-C to its workers (they save and stop), then raises this
        import signal

        from torch.distributed.elastic.multiprocessing.api import SignalException

        raise SignalException("Process 1 got signal: 2", sigval=signal.SIGINT)

    for fake, status in ((one_process, 2), (two_processes, 1), (lambda args: None, 0), (interrupted, 130)):
        monkeypatch.setattr(accelerate_launch, "launch_command", fake)
        assert trainers_cli._run_launcher(["--cpu", "-m", "facehub.trainers.run", "depthnet"]) == status
    assert capsys.readouterr().err.strip() == trainers_cli.INTERRUPTED


def test_train_help_lists_the_methods_config_keys_types_defaults_and_presets(capsys):
    assert main(["train", "depthnet", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: facehub train METHOD")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ") and
            len(line.split()) >= 3 and not line.startswith("    ")}
    assert rows["losses.gan_weight"] == ["float", "0.0"]
    assert rows["learning_rate"] == ["float", "0.001"]
    assert rows["mixed_precision"][-1] == "null" and rows["gradient_accumulation_steps"] == ["int", "|", "null", "null"]
    assert rows["model.hidden_sizes"] == ["list[int]", "|", "null", "(preset)"]
    assert "0 trains plain DepthNet; > 0 trains DepthNet+GAN" in out  # the field's description
    for preset in ("cpu-small", "paper", "default"):
        assert f"\n  {preset}: " in out
    assert main(["train", "prn_dense", "-h"]) == 0
    assert "data.flip_probability" in capsys.readouterr().out
    assert main(["train", "--help"]) == 0
    assert f"METHOD: one of {', '.join(methods.trainable())}" in capsys.readouterr().out


@pytest.mark.parametrize(("verb", "method", "options"), [
    ("eval", "depthnet", ["--pairs", "--data"]),
    ("eval", "prn_dense", ["--data"]),
    ("eval", "face_fitting", ["--data", "--method", "--every"]),
    ("bench", "depthnet", ["--repair", "--photos"]),
    ("bench", "prn_dense", ["--no-compile", "--train"]),
])
def test_eval_and_bench_help_show_the_methods_own_options(verb, method, options, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([verb, method, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: facehub {verb} {method}")
    for option in options:
        assert option in out


def test_eval_and_bench_errors_are_one_line(capsys):
    assert main(["bench", "cyclegan"]) == 2
    assert error_lines(capsys.readouterr().err) == [
        "facehub bench: error: Method 'cyclegan' has no `facehub bench` yet. Methods with one: depthnet, prn_dense, "
        "stylegan2."]
    assert main(["eval", "nerf", "--help"]) == 2
    assert error_lines(capsys.readouterr().err) == [
        f"facehub eval: error: Unknown method 'nerf'. Known methods: {', '.join(methods.names())}."]
    assert main(["bench", "depthnet", "--photos", "/no/such/folder"]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "obama.jpg, biden.jpg, astronaut.png are not in /no/such/folder" in lines[0]
    assert main(["eval", "--help"]) == 0
    assert ("One of: depthnet, disco_facegan, face_fitting, pose_cvaegan, prn_dense, stylefaceuv, rotation (every "
            "rotation method), swap (every swap method)."
            in " ".join(capsys.readouterr().out.split()))


def test_benchmark_scripts_run_the_packaged_benchmarks():
    for script, option in (("bench_depthnet.py", "--photos"), ("bench_prn_dense.py", "--no-compile"),
                           ("bench_rotation_swap.py", "--runs")):
        run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0 and option in run.stdout, run.stderr[-2000:]


def run_training(argv: list[str], tmp_path: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("FACEHUB_DEBUG", None)
    return subprocess.run(argv + [f"output_dir={tmp_path / 'out'}", "report_to=none", "max_steps=2"],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_errors_inside_the_run_are_one_line_without_a_traceback(tmp_path):
    missing = run_training([sys.executable, "-m", "facehub.trainers.run", "depthnet", "data.source=dataset",
                            "data.path=/no/such/prepared"], tmp_path)
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    errors = [line for line in missing.stderr.splitlines() if "error" in line.lower()]
    assert errors == ["facehub train: error: /no/such/prepared is not a folder written by `facehub prepare` "
                      "(no dataset/ inside)."]
    config = run_training([sys.executable, "-m", "facehub.trainers.depthnet", "losses.gan_wieght=1"], tmp_path)
    assert config.returncode == 2 and "Traceback" not in config.stderr
    assert error_lines(config.stderr)[-1].startswith("facehub train: error: Unknown config key `losses.gan_wieght`")


@pytest.mark.slow
def test_a_too_small_dataset_on_two_processes_is_one_line_from_the_main_process(tmp_path):
    facehub = Path(sys.executable).with_name("facehub")
    run = run_training([str(facehub), "train", "depthnet", "data.num_pairs=50", "--multi_gpu", "--num_processes",
                        "2"], tmp_path)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("facehub train: error:")]
    assert errors == ["facehub train: error: The dataset has 50 samples: fewer than one batch of 64 per process on 2 "
                      "processes."]


def test_prepare_synthetic_takes_the_worlds_variation_and_refuses_it_without_synthetic(tmp_path, capsys):
    import datasets
    import numpy as np

    from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

    argv = ["prepare", "--synthetic", "--identities", "2", "--views", "1", "--size", "64", "--uv-size", "8",
            "--seed", "4", "--hair", "1", "--glasses", "1", "--background-plane", "--max-yaw", "20"]
    assert main(argv + ["--out", str(tmp_path / "world")]) == 0
    rows = datasets.load_from_disk(str(tmp_path / "world" / "dataset"))
    same = SyntheticFaceWorld(SyntheticWorldConfig(num_identities=2, views_per_identity=1, image_size=64, uv_size=8,
                                                   seed=4, hair=1.0, glasses=1.0, background_plane=True,
                                                   max_yaw=20.0)).render(0, 0)
    plain = SyntheticFaceWorld(SyntheticWorldConfig(num_identities=2, views_per_identity=1, image_size=64, uv_size=8,
                                                    seed=4, max_yaw=20.0)).render(0, 0)
    first = np.asarray(rows[0]["image"].convert("RGB"))
    assert np.array_equal(first, np.asarray(same["image"])) and not np.array_equal(first, np.asarray(plain["image"]))
    assert max(abs(p[0]) for p in rows["pose"]) <= 20.0
    capsys.readouterr()
    assert main(["prepare", "--images", str(tmp_path), "--out", str(tmp_path / "x"), "--glasses", "1"]) == 2
    assert error_lines(capsys.readouterr().err) == [
        "facehub prepare: error: --glasses shape(s) the synthetic world; add --synthetic or drop them."]
