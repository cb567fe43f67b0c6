"""The method registry (facehub.methods), the top-level package, and one-line Hub errors.

The registry is what `facehub train|eval|bench`, `facehub hub list`, the cards and the demo read, so these tests pin
what it lists for the built-in methods, that listing imports no heavy module, that a method declared at run time
(or by a plugin's entry point) shows up everywhere with nothing else edited, and that bad declarations fail clearly.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading

import pytest
from ports import free_port

import facehub
from facehub import methods
from facehub.hub.errors import explain_hub_error, is_network_error
from facehub.hub.push import PushError, push_to_hub


def test_builtin_methods_and_capabilities():
    assert methods.names() == ["cyclegan", "depthnet", "disco_facegan", "face_fitting", "pose_cvaegan", "prn_dense",
                               "stylefaceuv", "stylegan2"]
    assert methods.available("rotation") == ["depthnet", "disco_facegan", "face_fitting", "pose_cvaegan", "prn_dense",
                                             "stylefaceuv"]
    assert methods.available("swap") == ["depthnet", "face_fitting", "prn_dense"]
    assert methods.available("reconstruction") == ["face_fitting", "prn_dense"]
    assert methods.available("generation") == ["disco_facegan", "stylefaceuv", "stylegan2"]
    assert methods.trainable() == ["cyclegan", "depthnet", "disco_facegan", "face_fitting", "pose_cvaegan",
                                   "prn_dense", "stylefaceuv", "stylegan2"]
    spec = methods.get("depthnet")
    assert spec.default_model == "facehub/depthnet"
    assert spec.pipeline_class("swap").__name__ == "FaceSwapPipeline"
    assert spec.training_class().__name__ == "DepthNetTraining"
    assert methods.method_of_class("FaceReconstructionPipeline").name == "prn_dense"
    assert methods.method_of_class("PoseCVAEGANRotationPipeline").name == "pose_cvaegan"
    assert methods.method_of_class("NoSuchClass") is None


def test_unknown_names_list_what_exists():
    with pytest.raises(methods.UnknownMethodError, match="Known methods: cyclegan, depthnet, disco_facegan, face_fitting, pose_cvaegan, prn_dense, "
                       "stylefaceuv, stylegan2"):
        methods.get("depthnets")
    with pytest.raises(methods.UnknownMethodError, match="no 'generation' capability.*offers: frontalization"):
        methods.get("depthnet").pipeline_class("generation")
    with pytest.raises(methods.UnknownMethodError, match="ships no embedded default"):
        methods.load("cyclegan", "repair")


def test_load_returns_the_ready_pipeline_on_the_embedded_default():
    pipe = methods.load("depthnet", "registration")
    assert type(pipe).__name__ == "KeypointRegistrationPipeline"
    assert pipe.depth_net.config.num_keypoints == 68


def test_listing_imports_no_model_code():
    code = ("import sys\nfrom facehub import methods\nmethods.available('rotation'); methods.get('prn_dense')\n"
            "heavy = [m for m in ('torch', 'diffusers', 'facehub.modeling') if m in sys.modules]\nprint(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_method_registered_at_run_time_is_found_everywhere():
    spec = methods.MethodSpec(
        name="toy_rotation",
        title="Toy rotation",
        paper="none",
        summary="turns nothing.",
        capabilities={"rotation": "facehub.modeling.depthnet:FaceRotationPipeline"},
        default_model="facehub/depthnet",
    )
    methods.register(spec)
    try:
        assert "toy_rotation" in methods.available("rotation")
        assert methods.register(spec) is spec  # the same spec again is fine
        with pytest.raises(ValueError, match="already registered"):
            methods.register(methods.MethodSpec(name="toy_rotation", title="other", paper="", summary=""))
        with pytest.raises(methods.UnknownMethodError, match="cannot be trained"):
            methods.get("toy_rotation").training_class()
        with pytest.raises(methods.UnknownMethodError, match="no `facehub eval` yet.*depthnet"):
            methods.get("toy_rotation").entry_point("eval")
    finally:
        methods.unregister("toy_rotation")
    assert "toy_rotation" not in methods.names()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "not-an-identifier"}, "must be a Python identifier"),
        ({"capabilities": {"rotation": "facehub.modeling.depthnet.FaceRotationPipeline"}}, "not 'package.module"),
        ({"training": "facehub.trainers.depthnet"}, "not 'package.module:name'"),
    ],
)
def test_bad_declarations_are_refused(fields, message):
    base = {"name": "bad", "title": "Bad", "paper": "", "summary": ""}
    with pytest.raises(ValueError, match=message):
        methods.MethodSpec(**{**base, **fields})


def test_entry_point_plugins_are_discovered(tmp_path):
    """A package that declares a method through the facehub.methods entry-point group needs no facehub edit."""
    plugin = tmp_path / "site"
    (plugin / "toy_plugin").mkdir(parents=True)
    (plugin / "toy_plugin" / "__init__.py").write_text(
        "from facehub.methods import MethodSpec\n"
        "METHOD = MethodSpec(name='toy_plugin', title='Toy', paper='', summary='',\n"
        "    capabilities={'generation': 'toy_plugin:Nothing'})\n"
    )
    dist = plugin / "toy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[facehub.methods]\ntoy_plugin = toy_plugin:METHOD\n")
    code = ("from facehub import methods\nprint(methods.available('generation'), methods.get('toy_plugin').title)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**_env(), "PYTHONPATH": str(plugin)})
    assert out.stdout.strip() == "['disco_facegan', 'stylefaceuv', 'stylegan2', 'toy_plugin'] Toy"


def _env():
    import os

    return dict(os.environ)


def test_top_level_package_exports_and_version():
    import importlib.metadata

    assert facehub.__version__ == importlib.metadata.version("facehub")
    from facehub import FaceReconstructionPipeline, FaceSwapPipeline

    assert FaceSwapPipeline.__module__ == "facehub.modeling.depthnet.pipeline_face_swap"
    assert FaceReconstructionPipeline.__name__ == "FaceReconstructionPipeline"
    assert "methods" in dir(facehub)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        facehub.Nope  # noqa: B018


def test_cli_version_and_hub_list_name_each_defaults_method():
    version = subprocess.run([sys.executable, "-m", "facehub.apps.cli", "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"facehub {facehub.__version__}"
    listing = subprocess.run([sys.executable, "-m", "facehub.apps.cli", "hub", "list", "--json"], capture_output=True,
                             text=True, check=True)
    rows = {row["id"]: row for row in json.loads(listing.stdout)}
    assert rows["facehub/depthnet"]["method"] == "depthnet"
    assert "swap" in rows["facehub/depthnet"]["capabilities"]
    assert rows["facehub/prn-dense"]["method"] == "prn_dense"


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A real HTTP endpoint that refuses every request with 401, as the Hub does for a bad token."""

    def _refuse(self):
        body = b'{"error": "Invalid credentials in Authorization header"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _refuse

    def log_message(self, *args):
        pass


def _push_in_subprocess(endpoint: str, folder: str) -> subprocess.CompletedProcess:
    # HF_ENDPOINT is read when huggingface_hub is imported, so each endpoint gets a fresh interpreter.
    return subprocess.run([sys.executable, "-m", "facehub.apps.cli", "hub", "push", folder, "someone/model"],
                          capture_output=True, text=True, timeout=120,
                          env={**_env(), "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_bad"})


def test_push_without_network_is_one_line(tmp_path):
    folder = facehub.hub.resolver.EMBEDDED_DEFAULTS_DIR / "facehub" / "depthnet"
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the connection is refused
    result = _push_in_subprocess(closed, str(folder))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "httpx" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"{closed} cannot be reached" in lines[0] and "--git-remote" in lines[0]


def test_push_with_a_refused_token_is_one_line():
    folder = facehub.hub.resolver.EMBEDDED_DEFAULTS_DIR / "facehub" / "depthnet"
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = _push_in_subprocess(f"http://127.0.0.1:{port}", str(folder))
    finally:
        server.shutdown()
        server.server_close()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "refused the credentials (401)" in lines[0] and "HF_TOKEN" in lines[0]


def test_explanations_look_through_wrapped_transport_errors():
    class ConnectError(Exception):
        pass

    class LocalEntryNotFoundError(Exception):
        pass

    try:
        try:
            raise ConnectError("[Errno 111] Connection refused")
        except ConnectError as inner:
            raise LocalEntryNotFoundError("cannot find the snapshot") from inner
    except LocalEntryNotFoundError as outer:
        assert is_network_error(outer)
        text = explain_hub_error(outer, action="load 'a/b'", endpoint="http://h", air_gapped="use a local folder")
    assert text == ("Could not load 'a/b': http://h cannot be reached ([Errno 111] Connection refused). Check the "
                    "network connection and HF_ENDPOINT, or use a local folder.")
    assert not is_network_error(ValueError("bad id"))
    assert issubclass(PushError, RuntimeError) and callable(push_to_hub)
