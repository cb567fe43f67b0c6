"""The demo under hostile model ids and load: the model allow-list, the bounded caches and the queue limits.

A demo of its own is served here, over embedded defaults made for the test and an allow-listed models folder.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import TEST_MODEL_ID, make_embedded_defaults
from gradio_client import Client
from gradio_client.exceptions import AppError
from ports import free_port

from facehub.apps.registry import MODEL_REFUSED, NO_MODEL_SELECTED, DemoContext, ModelNotAllowedError

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
TINY = "tiny-depthnet"  # a saved model in the allow-listed models folder
OTHER = "org/other"  # another, one level deeper


def save_tiny_depthnet(folder: Path, hidden: int = 8) -> Path:
    from facehub.modeling.depthnet import DepthNetModel, KeypointRegistrationPipeline

    KeypointRegistrationPipeline(depth_net=DepthNetModel(hidden_sizes=(hidden,))).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(embedded defaults, models folder, a saved model outside both)."""
    defaults = make_embedded_defaults(tmp_path_factory.mktemp("defaults"))
    models = tmp_path_factory.mktemp("models")
    save_tiny_depthnet(models / TINY)
    save_tiny_depthnet(models / OTHER, hidden=4)
    (models / TINY / "README.md").write_text("# tiny\n\nA tiny DepthNet in the models folder.\n")
    outside = save_tiny_depthnet(tmp_path_factory.mktemp("outside") / "secret-model")
    (models / "escape").symlink_to(outside)  # a link out of the models folder is not followed
    return defaults, models, outside


@pytest.fixture(scope="module")
def server(folders):
    from facehub.apps.demo import launch

    defaults, models, _ = folders
    ctx = DemoContext(device="cpu", models_dir=models, max_models=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("facehub.hub.resolver.EMBEDDED_DEFAULTS_DIR", defaults)
        port = free_port()
        demo = launch(host="127.0.0.1", port=port, ctx=ctx, block=False)
        try:
            yield demo, ctx, f"http://127.0.0.1:{port}/"
        finally:
            demo.close()
            ctx.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server[2], verbose=False, download_files=False)


def hostile_ids(folders) -> list[str]:
    defaults, models, outside = folders
    return [
        "/etc/passwd",  # a file that exists
        "/etc",  # a folder that exists
        "/no/such/folder",  # one that does not
        str(PROJECT),  # the project's own folder (has a README)
        str(PROJECT / "hub"),
        str(outside),  # a real saved model outside the allow-list
        "escape",  # a link in the models folder that leads out of it
        str(models),  # the models folder itself
        "../" + outside.parent.name + "/secret-model",
        "facehub/no-such-model",  # a Hub-style id
        "no-such-model",
        "x" * 5000,  # longer than any file name
        "tiny-depthnet\x00",
        "~/.ssh",
    ]


def test_offered_models_are_the_embedded_defaults_and_the_models_folder(client):
    _, catalog = client.predict(api_name="/list_models")
    offered = [row[0] for row in catalog["data"]]
    assert offered == [TEST_MODEL_ID, OTHER, TINY]


def test_every_other_id_gets_one_message_that_reveals_nothing(client, folders):
    answers = set()
    for model_id in hostile_ids(folders):
        for api_name in ("/model_info", "/load_model"):
            with pytest.raises(AppError) as err:
                client.predict(model_id, api_name=api_name)
            answers.add(err.value.message)
    assert answers == {MODEL_REFUSED}, "the answer must not depend on what exists on the server"
    with pytest.raises(AppError) as err:
        client.predict("   ", api_name="/load_model")
    assert err.value.message == NO_MODEL_SELECTED


def test_models_folder_entries_load_by_id_or_by_path(client, server, folders):
    from facehub.modeling.depthnet import DepthNetModel

    _, ctx, _ = server
    _, models, _ = folders
    summary, card, config = client.predict(TINY, api_name="/model_info")
    assert summary.startswith(f"### {TINY}\n") and "models folder" in summary and str(models) not in summary
    assert "A tiny DepthNet in the models folder." in card
    assert config["depth_net/config.json"]["hidden_sizes"] == [8]
    status, count = client.predict(str(models / OTHER), api_name="/load_model")
    assert f"**{OTHER}**" in status and str(models) not in status
    assert count == sum(p.numel() for p in DepthNetModel.from_pretrained(models / OTHER / "depth_net").parameters())
    assert [r.model_id for r in ctx.loaded()][-1] == OTHER


def _registration():
    from facehub.modeling.depthnet import KeypointRegistrationPipeline

    return KeypointRegistrationPipeline


def spellings(models: Path) -> list[str]:
    """40 different ways of writing the folder of TINY."""
    absolute = str(models / TINY)
    forms = []
    for k in range(10):
        forms.append("./" * k + TINY)
        forms.append("./" * k + TINY + "/")
        forms.append(f"{OTHER}/../../" + "./" * k + TINY if k % 2 else f" {'./' * k}{TINY} ")
        forms.append(absolute.replace("/", "/./", k + 1) if k < 5 else absolute.replace("/", "//", k - 4))
    assert len(set(forms)) == 40, forms
    return forms


def test_forty_spellings_of_one_model_load_one_copy(folders):
    _, models, _ = folders
    ctx = DemoContext(device="cpu", models_dir=models)
    loaded = {id(ctx.load(spelling, _registration())) for spelling in spellings(models)}
    assert len(loaded) == 1
    [record] = ctx.loaded()
    assert record.model_id == TINY and record.path == (models / TINY).resolve()


def test_the_model_cache_keeps_the_most_recently_used(folders, monkeypatch):
    defaults, models, _ = folders
    monkeypatch.setattr("facehub.hub.resolver.EMBEDDED_DEFAULTS_DIR", defaults)
    ctx = DemoContext(device="cpu", models_dir=models, max_models=2)
    cls = _registration()
    first = ctx.load(TINY, cls)
    ctx.load(OTHER, cls)
    assert ctx.load(TINY, cls) is first  # used again: now the most recent
    ctx.load(TEST_MODEL_ID, cls)  # pushes out OTHER, the least recently used
    assert [r.model_id for r in ctx.loaded()] == [TINY, TEST_MODEL_ID]
    assert not ctx.is_loaded(OTHER, cls) and ctx.is_loaded(str(models / TINY), cls)
    with pytest.raises(ModelNotAllowedError):
        ctx.load("/etc", cls)


def test_temporary_folders_are_bounded_and_removed(tmp_path):
    ctx = DemoContext(device="cpu", max_temp_folders=3)
    made = [ctx.temp_folder("t-") for _ in range(5)]
    for folder in made:
        (folder / "face.glb").write_bytes(b"x") if folder.exists() else None
    assert [f.exists() for f in made] == [False, False, True, True, True]
    assert ctx.temp_folders() == made[2:]
    root = made[-1].parent
    ctx.close()
    assert not root.exists()

    # A demo process that exits leaves nothing behind either.
    code = "from facehub.apps.registry import DemoContext; print(DemoContext(device='cpu').temp_folder())"
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    left = Path(printed.strip())
    assert left.name and not left.exists() and not left.parent.exists()


def test_queue_and_upload_limits_are_explicit(server):
    from facehub.apps.demo import CONCURRENCY_LIMIT, MAX_FILE_SIZE, QUEUE_SIZE

    demo, _, _ = server
    assert demo._queue.default_concurrency_limit == CONCURRENCY_LIMIT == 2
    assert demo._queue.max_size == QUEUE_SIZE == 64
    assert MAX_FILE_SIZE == "25mb" and demo.max_file_size == 25 * 1024**2


def test_events_that_run_a_network_share_one_concurrency_group(server):
    from facehub.apps.tabs.common import COMPUTE

    demo, _, _ = server
    groups = {fn.api_name: (fn.concurrency_id, fn.concurrency_limit) for fn in demo.fns.values() if fn.api_name}
    heavy = {"rotate", "frontalize", "swap", "reconstruct"}
    assert heavy <= set(groups)
    assert {groups[name][0] for name in heavy} == {COMPUTE}
    assert all(groups[name][1] in ("default", 2) for name in heavy)


def test_an_upload_over_the_size_limit_is_refused(client, tmp_path):
    from gradio_client import handle_file

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(26 * 1024**2))
    with pytest.raises(Exception, match="(?i)too large|exceeds|413|maximum"):
        client.predict(handle_file(str(big)), "facehub/prn-dense", "prn_dense", api_name="/reconstruct")


def test_twenty_concurrent_clients_get_answers_and_no_cache_grows(server, folders, tmp_path):
    """20 clients at once, each loading the model under another spelling and rotating a photo with it (the
    networks' concurrency group runs two at a time, the rest wait in the queue): every client gets its answer, and
    the demo holds one copy of the model per class afterwards."""
    from gradio_client import handle_file
    from PIL import Image

    demo, ctx, url = server
    _, models, _ = folders
    ctx.clear()
    photo = tmp_path / "small.png"
    Image.open(Path(__file__).parent / "data" / "photos" / "obama2.jpg").convert("RGB").reduce(3).save(photo)
    forms = spellings(models)[:20]
    results: list = [None] * 20
    rotations: list = [None] * 20
    errors: list = []

    def one(i: int) -> None:
        try:
            client = Client(url, verbose=False, download_files=False)
            results[i] = client.predict(forms[i], api_name="/load_model")
            rotations[i] = client.predict(handle_file(str(photo)), "depthnet", forms[i], 10, 0, None,
                                          api_name="/rotate")
        except Exception as err:  # collected, so that every thread finishes
            errors.append(f"{i}: {type(err).__name__}: {err}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert errors == []
    counts = {count for _, count in results}
    assert len(counts) == 1, counts
    assert sum(status.startswith("Loaded in") for status, _ in results) == 1, "one client loads, the rest share it"
    statuses = {status for _, status in rotations}
    assert len(statuses) == 1, statuses  # the same photo, model and pose give the same answer to every client
    assert "towards the requested pose (yaw +10.0" in statuses.pop()
    assert sorted((r.model_id, r.class_name) for r in ctx.loaded()) == [(TINY, "FaceRotationPipeline"),
                                                                         (TINY, "KeypointRegistrationPipeline")]
    assert ctx.temp_folders() == []


def test_cli_takes_a_models_folder(folders, monkeypatch):
    from facehub.apps import cli, demo

    _, models, _ = folders
    seen = {}
    monkeypatch.setattr(demo, "launch", lambda **kwargs: seen.update(kwargs))
    assert cli.main(["demo", "--models-dir", str(models), "--port", "7999"]) == 0
    assert seen["models_dir"] == str(models) and seen["allow_any_model"] is False and seen["port"] == 7999
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match=r"missing \(--models-dir\) does not exist"):
        demo.launch(models_dir=str(models / "missing"), block=False)
    monkeypatch.setenv("FACEHUB_MODELS_DIR", str(models / "gone"))
    with pytest.raises(FileNotFoundError, match=r"gone \(FACEHUB_MODELS_DIR\) does not exist"):
        demo.launch(block=False)


def test_models_folder_from_the_environment(folders, monkeypatch):
    _, models, _ = folders
    monkeypatch.setenv("FACEHUB_MODELS_DIR", str(models))
    assert DemoContext(device="cpu").resolve(TINY) == (TINY, (models / TINY).resolve())
    monkeypatch.delenv("FACEHUB_MODELS_DIR")
    with pytest.raises(ModelNotAllowedError):
        DemoContext(device="cpu").resolve(TINY)


def test_model_pickers_follow_the_models_folder(folders, tmp_path, monkeypatch):
    from facehub.apps.tabs.common import model_picker_update

    defaults, models, _ = folders
    monkeypatch.setattr("facehub.hub.resolver.EMBEDDED_DEFAULTS_DIR", defaults)
    ctx = DemoContext(device="cpu", models_dir=tmp_path)
    save_tiny_depthnet(tmp_path / "first")
    update = model_picker_update(ctx, "rotation", "depthnet", None)
    assert update["choices"] == [TEST_MODEL_ID, "first"] and update["value"] == TEST_MODEL_ID
    save_tiny_depthnet(tmp_path / "added-later")  # what a tab re-scans when it is opened
    update = model_picker_update(ctx, "rotation", "depthnet", "first")
    assert update["choices"] == [TEST_MODEL_ID, "added-later", "first"] and update["value"] == "first"
    assert model_picker_update(ctx, "rotation", "no_such_method", "first") == {"__type__": "update", "choices": [],
                                                                               "value": None}


def test_allow_any_model_is_an_explicit_opt_in(folders):
    _, _, outside = folders
    with pytest.raises(ModelNotAllowedError):
        DemoContext(device="cpu").resolve(str(outside))
    assert DemoContext(device="cpu", allow_any_model=True).resolve(str(outside)) == (str(outside), outside.resolve())


def test_a_demo_stopped_with_sigterm_removes_its_temporary_folder(tmp_path):
    import signal
    import time

    code = (
        "import sys\n"
        "from facehub.apps.demo import launch\n"
        "from facehub.apps.registry import DemoContext\n"
        "ctx = DemoContext(device='cpu')\n"
        "print(ctx.temp_folder(), flush=True)\n"
        f"launch(port={free_port()}, ctx=ctx)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=tmp_path)
    try:
        folder = Path(process.stdout.readline().strip())
        assert folder.is_dir()
        deadline = time.monotonic() + 120
        while "Running on" not in (line := process.stdout.readline()):  # launch() prints the URL once serving
            assert line and time.monotonic() < deadline, "the demo did not start"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert not folder.exists() and not folder.parent.exists()


def test_an_unexpected_failure_names_no_server_file(client, monkeypatch):
    def unreadable(folder):
        raise PermissionError(13, "Permission denied", str(folder / "README.md"))

    monkeypatch.setattr("facehub.apps.tabs.models.read_card", unreadable)
    with pytest.raises(AppError) as err:
        client.predict(TINY, api_name="/model_info")
    assert err.value.message == "Unexpected PermissionError; the server log has the details."


def test_a_slow_load_does_not_hold_up_other_models(folders):
    _, models, _ = folders
    ctx = DemoContext(device="cpu", models_dir=models)
    cls = _registration()
    cached = ctx.load(TINY, cls)
    started, release = threading.Event(), threading.Event()
    outcome = {}

    def slow(folder):
        started.set()
        assert release.wait(60)
        return cls.from_pretrained(str(folder))

    def load_other():
        outcome["other"] = ctx.load_checkpoint(OTHER, cls, loader=slow)

    def load_other_too():
        outcome["again"] = ctx.load_checkpoint(str(models / OTHER), cls, loader=slow)

    first = threading.Thread(target=load_other)
    first.start()
    assert started.wait(60)
    second = threading.Thread(target=load_other_too)  # the same model: waits for the first load, does not repeat it
    second.start()
    assert ctx.load(TINY, cls) is cached, "a cached model is served while another one loads"
    release.set()
    first.join(60)
    second.join(60)
    assert outcome["other"][2] is True and outcome["again"][2] is False
    assert outcome["other"][0] is outcome["again"][0]
    assert sorted(r.model_id for r in ctx.loaded()) == [OTHER, TINY]
