"""facehub.hub end to end: export -> push_to_git -> olah on 127.0.0.1 -> from_pretrained / pull, plus cards and CLI.

The Hub side is a real olah server (see ``local_hub.py``) serving the bare git repository that ``push_to_git`` wrote;
clients are fresh Python processes whose ``huggingface_hub`` is pointed at it with ``HF_ENDPOINT`` (it reads that at
import time) and given an empty cache, so every load really goes ``resolve`` -> ``snapshot_download`` -> HTTP.
Uploads through ``HfApi`` cannot be tested offline: olah is read-only, and there is no other local Hub server; the
test below checks only that ``push_to_hub`` reports such an endpoint's refusal clearly.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from local_hub import LocalHub, start_local_hub

from facehub.hub import cli as hub_cli
from facehub.hub.cards import NotAModelFolderError, describe_model_folder, load_eval_results, write_model_card
from facehub.hub.push import GitNotFoundError, GitPushError, PushError, init_bare_repo, mirror_repo_path, push_to_git
from facehub.modeling.depthnet import DepthNetModel, KeypointRegistrationPipeline

# The module, not the function: facehub.hub re-exports ``resolve``, which shadows the submodule as an attribute.
RESOLVE_MODULE = importlib.import_module("facehub.hub.resolver")
REPO_ID = "facehub-test/depthnet-tiny"
EVAL_RESULTS = {
    "task": "keypoint-registration",
    "dataset": "synthetic-faces",
    "split": "test",
    "metrics": {"registration_error_px": 1.25, "depth_correlation": 0.875},
}
CLIENT_TIMEOUT = 240

# Runs in a fresh interpreter pointed at the local hub: loads the pipeline and one component by Hub id and saves
# what they compute on the given inputs, their weights, and what the endpoint says about the repo.
LOAD_SCRIPT = r"""
import json, sys
import numpy as np, torch
from huggingface_hub import HfApi
from facehub.hub.resolver import resolve
from facehub.modeling.depthnet import DepthNetModel, KeypointRegistrationPipeline

torch.set_num_threads(1)  # the reference was computed on one thread too: same kernels, same rounding
repo_id, inputs_path, out_path = sys.argv[1:4]
inputs = np.load(inputs_path)
folder = resolve(repo_id)
pipe = KeypointRegistrationPipeline.from_pretrained(repo_id)
net = DepthNetModel.from_pretrained(repo_id, subfolder="depth_net").eval()
registration = pipe(inputs["source"], inputs["target"])
with torch.no_grad():
    net_depths = net(torch.from_numpy(inputs["source"][None]).float(), torch.from_numpy(inputs["target"][None]).float())
arrays = {f"pipe_state/{k}": v.numpy() for k, v in pipe.depth_net.state_dict().items()}
arrays.update({f"net_state/{k}": v.numpy() for k, v in net.state_dict().items()})
# olah answers repo metadata of a mirrored repo only for an explicit revision (offline, /api/models/<id> without
# one looks in its download cache alone).
info = HfApi().model_info(repo_id, revision="main")
np.savez(out_path, depths=registration.depths, affine=registration.affine, registered=registration.registered,
         net_depths=net_depths.depths.numpy(), **arrays)
print(json.dumps({"folder": str(folder), "sha": info.sha, "card_data": info.card_data.to_dict() if info.card_data else None}))
"""


def run_python(code: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; fail the test with its output when it exits non-zero."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT
    )
    if result.returncode != 0:
        pytest.fail(f"subprocess failed ({result.returncode}):\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def tree_files(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``folder``, leaving out huggingface_hub's ``.cache`` bookkeeping."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }


def git(*args: str, cwd: Path | None = None, strip: bool = True) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout
    return out.strip() if strip else out


def make_pipeline(seed: int = 0) -> KeypointRegistrationPipeline:
    """A tiny DepthNet pipeline whose weights and batch-norm statistics are all non-trivial."""
    torch.manual_seed(seed)
    net = DepthNetModel(hidden_sizes=(16,))
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.5)
        net.head.bias.normal_(0.0, 0.1)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
    return KeypointRegistrationPipeline(depth_net=net.eval())


def fixed_keypoints() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    source = rng.uniform(40.0, 210.0, size=(68, 2))
    target = source @ np.array([[0.9, 0.2], [-0.15, 1.05]]) + rng.normal(0.0, 1.5, size=(68, 2)) + 12.0
    return source, target


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hub")


@pytest.fixture(scope="module")
def exported(workdir):
    """The exported model folder (with eval_results.json), the original pipeline and its outputs on fixed input."""
    pipe = make_pipeline()
    folder = workdir / "export"
    pipe.save_pretrained(folder)
    (folder / "eval_results.json").write_text(json.dumps(EVAL_RESULTS))
    source, target = fixed_keypoints()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        registration = pipe(source, target)
        with torch.no_grad():
            net_depths = pipe.depth_net(torch.from_numpy(source[None]).float(), torch.from_numpy(target[None]).float())
    finally:
        torch.set_num_threads(threads)
    reference = {
        "depths": registration.depths,
        "affine": registration.affine,
        "registered": registration.registered,
        "net_depths": net_depths.depths.numpy(),
    }
    np.savez(workdir / "inputs.npz", source=source, target=target)
    return folder, pipe, reference


@pytest.fixture(scope="module")
def local_hub(workdir):
    """olah serving ``workdir/olah/mirrors`` on a free 127.0.0.1 port; stopped when the module's tests end."""
    hub = start_local_hub(workdir / "olah")
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def pushed(exported, local_hub: LocalHub) -> str:
    """``push_to_git`` of the export into the bare repository olah serves as ``REPO_ID``; the commit id."""
    folder, _, _ = exported
    assert not (folder / "README.md").exists()
    remote = init_bare_repo(local_hub.repo_path(REPO_ID))
    return push_to_git(folder, remote, message="Export tiny DepthNet")


def test_from_pretrained_through_local_hub_gives_identical_outputs(exported, local_hub, pushed, workdir):
    folder, pipe, reference = exported
    hf_home = workdir / "client-load"
    out = workdir / "loaded.npz"
    result = run_python(
        LOAD_SCRIPT, REPO_ID, str(workdir / "inputs.npz"), str(out), env=local_hub.client_env(hf_home), cwd=workdir
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])

    # It came through snapshot_download into the fresh cache, at the pushed commit.
    snapshot = Path(report["folder"])
    assert snapshot.is_relative_to(hf_home / "hub")
    assert snapshot.name == pushed and report["sha"] == pushed
    assert tree_files(snapshot) == tree_files(folder)

    loaded = np.load(out)
    for name, expected in reference.items():
        assert np.array_equal(loaded[name], expected), name
    for prefix in ("pipe_state", "net_state"):
        for key, value in pipe.depth_net.state_dict().items():
            assert torch.equal(torch.from_numpy(loaded[f"{prefix}/{key}"]), value), f"{prefix}/{key}"

    # The endpoint itself reads the card's metadata.
    assert report["card_data"]["library_name"] == "facehub"


def test_pushed_card_has_metadata_and_metrics(exported, pushed, local_hub):
    folder, _, _ = exported
    from huggingface_hub import ModelCard

    text = git("show", f"{pushed}:README.md", cwd=local_hub.repo_path(REPO_ID), strip=False)
    assert text == (folder / "README.md").read_text()
    card = ModelCard(text)
    assert card.data.library_name == "facehub"
    assert {"facehub", "diffusers", "face", "depthnet", "image-to-image"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "image-to-image"
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert metrics == EVAL_RESULTS["metrics"]
    assert {r.dataset_type for r in card.data.eval_results} == {"synthetic-faces"}
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}
    front_matter = yaml.safe_load(text.split("---", 2)[1])
    assert front_matter["model-index"][0]["name"] == REPO_ID
    assert f'KeypointRegistrationPipeline.from_pretrained("{REPO_ID}")' in card.text
    assert f'DepthNetModel.from_pretrained("{REPO_ID}", subfolder="depth_net")' in card.text
    assert "| keypoint-registration | synthetic-faces (test) | registration_error_px | 1.25 |" in card.text


def test_cli_pull_through_local_hub_copies_the_same_files(exported, pushed, local_hub, workdir):
    folder, _, _ = exported
    target = workdir / "pulled"
    env = local_hub.client_env(workdir / "client-pull")
    result = run_python(
        "from facehub.hub.cli import main; raise SystemExit(main())", "pull", REPO_ID, str(target), env=env, cwd=workdir
    )
    assert "Pulled" in result.stdout
    assert tree_files(target) == tree_files(folder)
    # A pulled copy is itself a model folder that can be pushed on (its .cache bookkeeping stays behind).
    mirror = init_bare_repo(workdir / "second-site.git")
    commit = push_to_git(target, mirror)
    assert git("show", "--name-only", "--format=", commit, cwd=mirror).splitlines() == sorted(tree_files(folder))


def test_push_keeps_history_and_old_revisions_stay_downloadable(workdir, local_hub):
    folder = workdir / "history-export"
    make_pipeline(seed=1).save_pretrained(folder)
    (folder / "notes.txt").write_text("first export\n")
    repo_id = "facehub-test/history"
    remote = init_bare_repo(mirror_repo_path(local_hub.mirrors, repo_id))

    first = push_to_git(folder, remote, repo_id=repo_id, message="first")
    first_files = tree_files(folder)
    assert push_to_git(folder, remote, repo_id=repo_id) == first  # same content: nothing new

    make_pipeline(seed=2).save_pretrained(folder)
    (folder / "notes.txt").unlink()
    second = push_to_git(folder, remote, repo_id=repo_id, message="second")

    assert git("rev-list", "--parents", "-n", "1", second, cwd=remote).split() == [second, first]
    assert git("log", "--format=%an <%ae>|%s", "main", cwd=remote).splitlines() == [
        "facehub <facehub@localhost>|second",
        "facehub <facehub@localhost>|first",
    ]
    assert "notes.txt" not in git("ls-tree", "-r", "--name-only", "main", cwd=remote).splitlines()

    old = workdir / "history-old"
    env = local_hub.client_env(workdir / "client-history")
    run_python(
        "from facehub.hub.cli import main; raise SystemExit(main())",
        "pull",
        repo_id,
        str(old),
        "--revision",
        first,
        env=env,
        cwd=workdir,
    )
    assert tree_files(old) == first_files


def test_push_to_git_commits_files_behind_symlinks(workdir, exported):
    """A snapshot folder of the huggingface_hub cache is links into blobs/; the pushed tree must hold the files."""
    folder, _, _ = exported
    blobs = workdir / "link-blobs"
    linked = workdir / "linked-export"
    for relative, content in tree_files(folder).items():
        blob = blobs / relative.replace("/", "__")
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        (linked / relative).parent.mkdir(parents=True, exist_ok=True)
        (linked / relative).symlink_to(blob)
    remote = init_bare_repo(workdir / "linked.git")
    commit = push_to_git(linked, remote, create_card=False)
    entries = git("ls-tree", "-r", commit, cwd=remote).splitlines()
    assert entries and all(line.startswith("100644 blob") for line in entries)
    for relative, content in tree_files(folder).items():
        shown = subprocess.run(["git", "show", f"{commit}:{relative}"], cwd=remote, capture_output=True, check=True)
        assert shown.stdout == content, relative


def test_push_to_git_errors_are_clear(workdir, monkeypatch):
    with pytest.raises(NotAModelFolderError, match="does not exist"):
        push_to_git(workdir / "missing", workdir / "x.git")
    empty = workdir / "not-a-model"
    empty.mkdir()
    (empty / "weights.bin").write_bytes(b"\0")
    with pytest.raises(NotAModelFolderError, match="neither model_index.json nor config.json"):
        push_to_git(empty, workdir / "x.git")

    folder = workdir / "errors-export"
    make_pipeline().save_pretrained(folder)
    with pytest.raises(GitPushError, match="no-such-remote") as err:
        push_to_git(folder, workdir / "no-such-remote.git")
    assert err.value.stderr

    # A remote that refuses: git's own message reaches the caller.
    guarded = init_bare_repo(workdir / "guarded.git")
    hook = guarded / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'this mirror is read-only' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(GitPushError, match="this mirror is read-only") as err:
        push_to_git(folder, guarded)
    assert "refused the push" in str(err.value)
    assert git("for-each-ref", cwd=guarded) == ""

    empty_path = workdir / "no-git-here"
    empty_path.mkdir()
    monkeypatch.setenv("PATH", str(empty_path))
    with pytest.raises(GitNotFoundError, match="git is not installed"):
        push_to_git(folder, guarded)


def test_push_to_hub_reports_a_read_only_endpoint(workdir, local_hub):
    """olah has no upload API, so HfApi uploads cannot succeed offline; the refusal must come back clearly."""
    folder = workdir / "hub-push-export"
    make_pipeline().save_pretrained(folder)
    code = (
        "import sys\nfrom facehub.hub.push import PushError, push_to_hub\n"
        "try:\n    push_to_hub(sys.argv[1], 'facehub-test/upload', token='hf_local_test_token')\n"
        "except PushError as err:\n    print(err)\nelse:\n    raise SystemExit('push_to_hub did not fail')\n"
    )
    result = run_python(code, str(folder), env=local_hub.client_env(workdir / "client-upload"), cwd=workdir)
    assert local_hub.endpoint in result.stdout
    assert "405" in result.stdout and "read-only" in result.stdout
    assert (folder / "README.md").is_file()  # the card is written before the upload is tried


def test_resolve_unknown_id_offline_lists_embedded_defaults(workdir, exported):
    folder, _, _ = exported
    defaults = workdir / "defaults"
    shutil.copytree(folder, defaults / "facehub" / "depthnet-tiny", ignore=shutil.ignore_patterns("*.safetensors"))
    code = (
        "import importlib, sys\nfrom pathlib import Path\nr = importlib.import_module('facehub.hub.resolver')\n"
        "r.EMBEDDED_DEFAULTS_DIR = Path(sys.argv[1])\n"
        "try:\n    r.resolve('nobody/no-such-model')\n"
        "except r.ModelNotFoundError as err:\n    print(err)\nelse:\n    raise SystemExit('resolve did not fail')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(workdir / "client-offline"), HF_HUB_DISABLE_TELEMETRY="1")
    message = run_python(code, str(defaults), env=env, cwd=workdir).stdout
    assert "'nobody/no-such-model'" in message
    assert "embedded defaults: facehub/depthnet-tiny" in message
    assert "HF_HUB_OFFLINE" in message


def test_write_model_card_with_training_command_and_single_network(workdir, exported):
    folder, _, _ = exported
    network = workdir / "single-network"
    shutil.copytree(folder / "depth_net", network)
    info = describe_model_folder(network)
    assert (info.class_name, info.is_pipeline, info.method) == ("DepthNetModel", False, "depthnet")

    command = "accelerate launch -m facehub.trainers.run depthnet --preset cpu-small --output_dir runs/x"
    card_path = write_model_card(
        network,
        repo_id="org/depthnet-small",
        method=None,
        description="A small DepthNet trained on synthetic faces.",
        training_command=command,
        base_model="facehub/depthnet",
        datasets=["org/faces"],
        tags=["experiment"],
    )
    from huggingface_hub import ModelCard

    card = ModelCard.load(card_path)
    assert card.data.library_name == "facehub"
    assert card.data.base_model == "facehub/depthnet" and card.data.datasets == ["org/faces"]
    assert "experiment" in card.data.tags and card.data.eval_results is None
    assert f"```bash\n{command}\n```" in card.text
    assert 'model = DepthNetModel.from_pretrained("org/depthnet-small")' in card.text
    assert "No evaluation results were recorded" in card.text

    # list_embedded shows the card's description line.
    defaults = workdir / "card-defaults"
    shutil.copytree(network, defaults / "org" / "depthnet-small")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RESOLVE_MODULE, "EMBEDDED_DEFAULTS_DIR", defaults)
        (entry,) = RESOLVE_MODULE.list_embedded()
    assert (entry.model_id, entry.class_name) == ("org/depthnet-small", "DepthNetModel")
    assert entry.description == "A small DepthNet trained on synthetic faces."


def test_bad_eval_results_are_reported(workdir):
    folder = workdir / "bad-eval"
    folder.mkdir()
    (folder / "eval_results.json").write_text(json.dumps({"task": "x", "metrics": {"nme": 1.0}}))
    with pytest.raises(ValueError, match="lacks 'dataset'"):
        load_eval_results(folder)
    (folder / "eval_results.json").write_text(json.dumps({"task": "x", "dataset": "y", "metrics": {"nme": [1]}}))
    with pytest.raises(ValueError, match="metric 'nme'"):
        load_eval_results(folder)


def test_hub_list_cli(workdir, exported, monkeypatch, capsys):
    folder, _, _ = exported
    defaults = workdir / "list-defaults"
    embedded = defaults / "facehub" / "depthnet-tiny"
    shutil.copytree(folder, embedded, ignore=shutil.ignore_patterns("*.safetensors", "README.md"))
    write_model_card(embedded, repo_id="facehub/depthnet-tiny", method="depthnet")
    monkeypatch.setattr(RESOLVE_MODULE, "EMBEDDED_DEFAULTS_DIR", defaults)

    assert hub_cli.main(["list", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["id"] == "facehub/depthnet-tiny"
    assert row["class_name"] == "KeypointRegistrationPipeline"
    assert row["description"].startswith("DepthNets for facehub")

    assert hub_cli.main(["hub", "list"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.split()[:2] == ["facehub/depthnet-tiny", "KeypointRegistrationPipeline"]
    assert line.endswith(row["description"])


def test_hub_cli_push_to_mirrors_dir_and_errors(workdir, capsys):
    folder = workdir / "cli-export"
    make_pipeline().save_pretrained(folder)
    mirrors = workdir / "cli-mirrors"
    assert hub_cli.main(["push", str(folder), "org/cli-model", "--mirrors-dir", str(mirrors), "--no-card"]) == 0
    assert "Pushed" in capsys.readouterr().out
    repo = mirrors / "models" / "org" / "cli-model"
    assert git("symbolic-ref", "HEAD", cwd=repo) == "refs/heads/main"
    assert "README.md" not in git("ls-tree", "--name-only", "main", cwd=repo).splitlines()

    assert hub_cli.main(["push", str(workdir / "missing"), "org/x", "--git-remote", str(repo)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_facehub_command_has_hub_subcommands():
    from facehub.apps.cli import build_parser

    args = build_parser().parse_args(["hub", "push", "export", "org/name", "--git-remote", "/srv/git/name.git"])
    assert args.func.__module__ == "facehub.hub.cli"
    assert (args.path, args.repo_id, args.git_remote) == ("export", "org/name", "/srv/git/name.git")
    assert build_parser().parse_args(["hub", "pull", "org/name", "dir", "--revision", "v1"]).revision == "v1"


def test_package_exports():
    import facehub.hub as hub

    if getattr(hub, "__file__", None) is None:
        pytest.skip(
            "facehub.hub was imported as a namespace package, so hub/__init__.py did not run: the editable install "
            "predates it. Reinstall (`.venv/bin/uv pip install --python .venv/bin/python -e . --no-deps`)."
        )
    from facehub.hub import pull, push_to_git, push_to_hub, resolve, write_model_card

    assert callable(resolve) and callable(pull)
    assert push_to_git.__module__ == "facehub.hub.push" and push_to_hub.__module__ == "facehub.hub.push"
    assert write_model_card.__module__ == "facehub.hub.cards"
    assert hub.PushError is PushError
