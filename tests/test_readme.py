"""README.md runs: every Python block, in order, and every documented command, with minimal step counts.

Python blocks run one after another in one fresh interpreter (they share names, as a reader's session would), in a
scratch folder where the README's placeholder photo names exist as copies of the public-domain test photos
(:data:`PLACEHOLDER_PHOTOS`). A failure points at the README line of the block.

Commands (the lines of ``bash`` blocks) run in order in a second scratch folder, each rewritten by the first rule of
:data:`COMMAND_RULES` whose pattern matches: training gets a handful of steps and a tiny dataset, evaluation and
benchmarks the smallest settings. A rule may skip a command instead, with the reason (``make test`` is this suite;
``make demo`` serves until stopped and is what tests/test_app.py starts). A README command that no rule knows fails
the test, so a new command cannot go in untested.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PHOTOS = ROOT / "tests" / "data" / "photos"

#: README placeholder -> test photo it stands for.
PLACEHOLDER_PHOTOS = {
    "photo.jpg": "obama.jpg",
    "source.jpg": "obama.jpg",
    "target.jpg": "biden.jpg",
    "other.jpg": "obama2.jpg",
}

#: Small settings appended to every `facehub train` (key=value overrides of the shared config).
TRAIN_SMALL = ["max_steps=2", "checkpointing_steps=1", "logging_steps=1", "report_to=none"]
#: ...and per method, the smallest data that makes one batch.
TRAIN_SMALL_DATA = {
    "depthnet": ["train_batch_size=4", "data.num_pairs=16"],
    "prn_dense": ["train_batch_size=2", "data.synthetic.num_identities=2", "data.synthetic.views_per_identity=2",
                  "data.profiling_probability=0"],
    "cyclegan": ["train_batch_size=1"],
}


@dataclass(frozen=True)
class Rule:
    """How to run README commands matching ``pattern`` (a regex on the joined command line)."""

    pattern: str
    append: tuple[str, ...] = ()
    skip: str | None = None
    replace: tuple[tuple[str, str], ...] = ()
    #: Commands of one lane run in README order; the two lanes run side by side (see :data:`LANES`).
    lane: str = "a"


#: Lane "a": the fitted photos and DepthNet. Lane "b": the prepared photos (data/faces), the synthetic world, the
#: StyleGAN2 converter, PRN-Dense's training and evaluation, and the Hub. Lane "c": the CycleGAN repair, the
#: benchmarks and the pose CVAE-GAN evaluation. No command reads what another lane writes.
LANES = ("a", "b", "c")


COMMAND_RULES: list[Rule] = [
    Rule(r"^make test\b", skip="this is the test suite itself"),
    Rule(r"^make demo\b", skip="serves until stopped; tests/test_app.py and tests/test_browser.py start the demo"),
    Rule(r"^facehub demo\b", skip="serves until stopped; tests/test_app.py starts it with the same options"),
    Rule(r"^facehub train \w+ .*--multi_gpu", replace=(("--multi_gpu", "--cpu"), ("--num_processes 4", "--num_processes 2"))),
    Rule(r"^facehub train pose_cvaegan ", skip="tests/test_pose_cvaegan.py runs `facehub train pose_cvaegan` with two "
         "processes and checks its losses, samples, checkpoint and export"),
    Rule(r"^facehub train stylegan2 ", skip="tests/test_stylegan2.py runs `facehub train stylegan2` with two processes "
         "and checks its losses, R1 and path-length steps, samples and export"),
    Rule(r"^facehub train disco_facegan ", skip="tests/test_disco_facegan.py runs its trainer through the three phases, "
         "resumed, against an adversarial-only run, and `facehub eval disco_facegan` on the export"),
    Rule(r"^facehub train stylefaceuv ", skip="tests/test_stylefaceuv.py runs its trainer in oracle mode through the "
         "three stages, resumed, and `facehub eval stylefaceuv` on the export"),
    Rule(r"^facehub eval stylefaceuv", skip="tests/test_stylefaceuv.py runs it on the export of its training test "
         "and on the embedded default"),
    Rule(r"^facehub eval disco_facegan", skip="tests/test_disco_facegan.py runs it on the model its training test "
         "exports"),
    Rule(r"^facehub train cyclegan ", lane="c"),
    Rule(r"^facehub train prn_dense ", lane="b"),
    Rule(r"^facehub train "),
    Rule(r"^facehub prepare --synthetic", replace=(("--identities 100", "--identities 2"), ("--views 8", "--views 2")),
         lane="b"),
    Rule(r"^facehub prepare --images .*--fit"),
    # One process here: the photo folder has three photos, and tests/test_prepare.py runs the two-process path.
    Rule(r"^facehub prepare --images", replace=(("--num-proc 2", "--num-proc 1"),), lane="b"),
    Rule(r"^facehub prepare-swaps", replace=(("--count 2000", "--count 2"),), lane="c"),
    Rule(r"^facehub eval depthnet", append=("--pairs", "64")),
    Rule(r"^facehub eval prn_dense", lane="b"),
    Rule(r"^facehub eval pose_cvaegan", append=("--identities", "1", "--yaws=-30,30", "--limit", "1", "--method",
                                                 "pose_cvaegan", "--method", "input"), lane="c"),
    Rule(r"^facehub (eval rotation|eval swap|compare) ", skip="tests/test_texture_swap.py runs these through "
         "facehub's command line at their smallest and checks their tables, results.json and contact sheets"),
    Rule(r"^facehub bench prn_dense", append=("--runs", "1", "--presets", "cpu-small", "--no-compile"), lane="c"),
    Rule(r"^facehub bench \w+", append=("--runs", "1"), lane="c"),
    Rule(r"^facehub (train|eval|bench) \w+ --help"),
    Rule(r"^facehub convert stylegan2 ", replace=(("550000.pt", str(ROOT / "tests" / "data" / "stylegan2-rosinality"
                                                                     / "rosinality_tiny_64.pt")),),
         append=("--w-avg-samples", "100"), lane="b"),
    Rule(r"^facehub hub list", lane="b"),
    Rule(r"^facehub hub push .* --git-remote", lane="b"),
    Rule(r"^facehub hub push ", skip="publishes to huggingface.co; tests/test_methods_registry.py checks its failures "
         "and tests/test_hub.py the --git-remote path"),
    Rule(r"^facehub hub pull ", skip="downloads from huggingface.co; tests/test_hub.py pulls from a local endpoint"),
    Rule(r"^python benchmarks/bench_\w+\.py", append=("--runs", "1")),
]


def blocks(language: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every fenced block of ``language`` in README.md."""
    found, lines = [], README.read_text().splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() == f"```{language}":
            start, body = index + 2, []
            index += 1
            while lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            found.append((start, "\n".join(body)))
        index += 1
    return found


def commands() -> list[tuple[int, str]]:
    """``(line number, command)`` of every command in the bash blocks (continuations joined, comments dropped)."""
    found = []
    for start, code in blocks("bash"):
        pending, first = "", start
        for offset, line in enumerate(code.splitlines()):
            text = line.split(" #")[0].rstrip() if not line.lstrip().startswith("#") else ""
            if not text.strip() and not pending:
                continue
            if not pending:
                first = start + offset
            if text.endswith("\\"):
                pending += text[:-1].strip() + " "
                continue
            found.append((first, (pending + text.strip()).strip()))
            pending = ""
    return found


def rule_for(command: str) -> Rule:
    for rule in COMMAND_RULES:
        if re.search(rule.pattern, command):
            return rule
    raise AssertionError(f"README command {command!r} has no rule in tests/test_readme.py: add one (run or skip).")


def rewrite(command: str, rule: Rule) -> list[str]:
    for old, new in rule.replace:
        command = command.replace(old, new)
    argv = shlex.split(command)
    if argv[:2] == ["facehub", "train"] and "--help" not in argv:
        argv += TRAIN_SMALL + TRAIN_SMALL_DATA.get(argv[2], [])
        if "--cpu" not in argv and "--num_processes" not in " ".join(argv):
            argv.append("--cpu")
    argv += list(rule.append)
    if argv[0] == "facehub":
        argv = [str(Path(sys.executable).with_name("facehub")), *argv[1:]]
    elif argv[0] == "python":
        argv[0] = sys.executable
    return argv


def _sandbox(root: Path) -> Path:
    """A scratch folder with the README's placeholder photos, a photo folder, and the repo's configs and scripts."""
    root.mkdir(parents=True, exist_ok=True)
    for placeholder, photo in PLACEHOLDER_PHOTOS.items():
        shutil.copy(PHOTOS / photo, root / placeholder)
    for identity, names in {"obama": ["obama.jpg", "obama2.jpg"], "biden": ["biden.jpg"]}.items():
        (root / "photos" / identity).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(PHOTOS / name, root / "photos" / identity / name)
    if not (root / "mirror.git").exists():  # the git remote of `facehub hub push ... --git-remote mirror.git`
        subprocess.run(["git", "init", "--quiet", "--bare", "mirror.git"], cwd=root, check=True)
    (root / "trainers").mkdir(exist_ok=True)
    for link, target in (("trainers/configs", ROOT / "trainers" / "configs"), ("benchmarks", ROOT / "benchmarks")):
        if not (root / link).exists():
            (root / link).symlink_to(target)
    return root


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    env.pop("FACEHUB_DEBUG", None)
    return env


RUNNER = r'''
import json, sys, traceback
namespace = {"__name__": "__readme__"}
for line, code in json.load(open(sys.argv[1])):
    print(f"--- README.md:{line}", flush=True)
    try:
        exec(compile(code, f"README.md:{line}", "exec"), namespace)
    except Exception:
        traceback.print_exc()
        sys.exit(f"README.md block at line {line} failed")
'''


def test_every_python_block_runs_in_order(tmp_path):
    sandbox = _sandbox(tmp_path / "python")
    code_blocks = blocks("python")
    assert code_blocks, "README.md has no python blocks"
    (sandbox / "blocks.json").write_text(json.dumps(code_blocks))
    (sandbox / "runner.py").write_text(RUNNER)
    result = subprocess.run([sys.executable, "runner.py", "blocks.json"], cwd=sandbox, env=_env(),
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    ran = [line for line in result.stdout.splitlines() if line.startswith("--- README.md:")]
    assert len(ran) == len(code_blocks)


def test_every_command_has_a_rule():
    listed = commands()
    assert listed, "README.md has no commands"
    for _, command in listed:
        rule_for(command)


def _run_lane(entries: list[tuple[int, str, Rule]], sandbox: Path) -> list[str]:
    """Run one lane's commands in order; stop at the first failure (``FAILED`` in the report)."""
    report = []
    for line, command, rule in entries:
        argv = rewrite(command, rule)
        started = time.perf_counter()
        result = subprocess.run(argv, cwd=sandbox, env=_env(), capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            report.append(f"FAILED README.md:{line} `{command}` (run as {shlex.join(argv)}) exited "
                          f"{result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
            break
        report.append(f"README.md:{line} ok in {time.perf_counter() - started:.1f} s (lane {rule.lane}): {command}")
    return report


@pytest.mark.slow
def test_every_documented_command_runs(tmp_path):
    """Every README command, in README order within its lane; the two lanes run at once (most commands spend their
    first seconds importing, on one core)."""
    from concurrent.futures import ThreadPoolExecutor

    sandbox = _sandbox(tmp_path / "commands")
    report, lanes = [], {lane: [] for lane in LANES}
    for line, command in commands():
        rule = rule_for(command)
        if rule.skip:
            report.append(f"README.md:{line} skipped ({rule.skip}): {command}")
        else:
            lanes[rule.lane].append((line, command, rule))
    with ThreadPoolExecutor(max_workers=len(LANES)) as pool:
        for lane_report in pool.map(lambda entries: _run_lane(entries, sandbox), lanes.values()):
            report += lane_report
    failures = [entry for entry in report if entry.startswith("FAILED")]
    assert not failures, "\n\n".join(failures)
    print("\n".join(report))
