"""One config system for every method: typed dataclasses with documented fields, named presets, YAML files and
``key=value`` overrides, and one error for an unknown or ill-typed key anywhere."""

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from facehub import methods
from facehub.trainers.core import ConfigError, TrainingConfig, load_config
from facehub.trainers.core.config import ConfigSection, config_keys, describe_config, field_docs, parse_overrides

CONFIGS = Path(__file__).resolve().parents[1] / "trainers" / "configs"
METHODS = ("cyclegan", "depthnet", "prn_dense")


def config_class(name: str) -> type[TrainingConfig]:
    return methods.get(name).config_class()


@pytest.mark.parametrize("name", METHODS)
def test_every_method_declares_a_typed_config_with_every_field_documented(name):
    cls = config_class(name)
    assert issubclass(cls, TrainingConfig) and methods.get(name).training_class().config_class is cls
    assert {"paper", "cpu-small"} <= set(cls.presets)
    hints = typing.get_type_hints(cls)
    for section in ("model", "data", "losses"):
        section_class = hints[section]
        assert issubclass(section_class, ConfigSection) and section_class is not ConfigSection
        documented = field_docs(section_class)
        for f in dataclasses.fields(section_class):
            assert documented.get(f.name), f"{name}: `{section}.{f.name}` is not in {section_class.__name__}'s docstring"
    shared = field_docs(cls)
    for f in dataclasses.fields(cls):
        assert f.name in ("model", "data", "losses") or shared.get(f.name), f"`{f.name}` is undocumented"
    # Defaults and every preset build and validate.
    assert load_config(method=name).method == name
    for preset in cls.presets:
        config = load_config(method=name, preset=preset)
        assert type(config) is cls and config.preset == preset


@pytest.mark.parametrize(("name", "key", "message"), [
    ("depthnet", "losses.gan_wieght=0.1",
     "Unknown config key `losses.gan_wieght` for method depthnet; did you mean `losses.gan_weight`?"),
    ("depthnet", "model.hidden_size=[8]",
     "Unknown config key `model.hidden_size` for method depthnet; did you mean `model.hidden_sizes` or "
     "`model.image_size`?"),
    ("depthnet", "data.nosie=0.1", "Unknown config key `data.nosie` for method depthnet; did you mean `data.noise`?"),
    ("depthnet", "max_step=3", "Unknown config key `max_step` for method depthnet; did you mean `max_steps`?"),
    ("depthnet", "lossses.gan_weight=0.1", "Unknown config key `lossses` for method depthnet; did you mean `losses`?"),
    ("prn_dense", "data.flip=true",
     "Unknown config key `data.flip` for method prn_dense; did you mean `data.flip_probability`?"),
    ("prn_dense", "losses.knd=mse", "Unknown config key `losses.knd` for method prn_dense; did you mean `losses.kind`?"),
    ("prn_dense", "model.sample_sze=64",
     "Unknown config key `model.sample_sze` for method prn_dense; did you mean `model.sample_size`?"),
    ("cyclegan", "model.cycle_loss_weight=5",
     "Unknown config key `model.cycle_loss_weight` for method cyclegan; did you mean `losses.cycle_loss_weight`?"),
    ("cyclegan", "data.domain_c=x", "Unknown config key `data.domain_c` for method cyclegan; did you mean "
     "`data.domain_b` or `data.domain_a`?"),
    ("cyclegan", "colour=1", "Unknown config key `colour` for method cyclegan; `facehub train cyclegan --help` lists "
     "every key."),
])
def test_unknown_keys_anywhere_are_one_error_with_close_matches(name, key, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [key], method=name)
    assert str(error.value) == message


@pytest.mark.parametrize(("name", "key", "message"), [
    ("depthnet", "losses.gan_weight=abc",
     "Config key `losses.gan_weight` for method depthnet expects float, got 'abc' (str)."),
    ("depthnet", "max_steps=1.5", "Config key `max_steps` for method depthnet expects int, got 1.5 (float)."),
    ("depthnet", "model.hidden_sizes=64",
     "Config key `model.hidden_sizes` for method depthnet expects list[int] | null, got 64 (int)."),
    ("depthnet", "data.source=photos", "Config key `data.source` for method depthnet expects 'morphable_pairs' | "
     "'rigid_pairs' | 'dataset', got 'photos' (str)."),
    ("prn_dense", "data.augment=1", "Config key `data.augment` for method prn_dense expects bool, got 1 (int)."),
    ("depthnet", "data.shape_axes=[1, 2]", "Config key `data.shape_axes` for method depthnet expects list[float] of 3 "
     "| null, got [1, 2] (list)."),
    ("prn_dense", "mixed_precision=fp32", "Config key `mixed_precision` for method prn_dense expects 'no' | 'fp16' | "
     "'bf16' | null, got 'fp32' (str)."),
    ("cyclegan", "losses.history_size=[1]",
     "Config key `losses.history_size` for method cyclegan expects int, got [1] (list)."),
])
def test_ill_typed_values_name_the_key_and_the_expected_type(name, key, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [key], method=name)
    assert str(error.value) == message


def test_values_out_of_range_name_the_dotted_key():
    cases = {
        ("depthnet", "losses.gan_weight=-1"): "Got -1.0 for `losses.gan_weight`",
        ("depthnet", "model.hidden_sizes=[0]"): "Got [0] for `model.hidden_sizes`; expected one or more positive "
                                                "widths (over the model preset 'cpu-small').",
        ("depthnet", "model.preset=huge"): "Got 'huge' for `model.preset`; known model presets: paper, cpu-small",
        ("prn_dense", "model.sample_size=100"): "Got 100 for `model.sample_size`; it must be divisible by 2 ** 5",
        ("prn_dense", "losses.lr_factors=[1.0]"): "`losses.lr_factors` needs one more value",
        ("cyclegan", "losses.history_size=-1"): "Got -1 for `losses.history_size`",
        ("depthnet", "train_batch_size=0"): "Got 0 for `train_batch_size`; it must be a positive integer.",
        ("prn_dense", "lr_scheduler=cosin"): "Got 'cosin' for `lr_scheduler`; expected one of constant, "
                                             "constant_with_warmup, linear, cosine, cosine_with_restarts, "
                                             "polynomial; did you mean 'cosine'?",
    }
    for (name, key), message in cases.items():
        with pytest.raises(ConfigError) as error:
            load_config(None, [key], method=name)
        assert str(error.value).startswith(message), (key, str(error.value))
    with pytest.raises(ConfigError, match="`data.noise` does not apply to data.source=rigid_pairs"):
        load_config(None, ["data.source=rigid_pairs", "data.noise=0.1"], method="depthnet")
    with pytest.raises(ConfigError, match=r"Got 0 for `data.synthetic.num_identities`; it must be a positive integer"):
        load_config(None, ["data.synthetic={num_identities: 0, weight: 2}"], method="prn_dense")
    with pytest.raises(ConfigError, match=r"Config key `data.synthetic.max_yaw` for method prn_dense expects float"):
        load_config(None, ["data.synthetic={max_yaw: wide}"], method="prn_dense")
    with pytest.raises(ConfigError, match=r"Unknown config key `data.synthetic.max_yw` for method prn_dense; did you "
                                          r"mean `data.synthetic.max_yaw`"):
        load_config(None, ["data.synthetic={max_yw: 3}"], method="prn_dense")
    with pytest.raises(ConfigError, match="case-A DepthNet .* use data.source=dataset"):
        load_config(None, ["model.preset=cpu-small-siamese"], method="depthnet")


def test_overrides_are_yaml_values_with_dotted_keys():
    assert parse_overrides(["a.b=1", "c=[1, 2]", "d=3e-4", "e=null", "f=true"]) == {
        "a": {"b": 1}, "c": [1, 2], "d": "3e-4", "e": None, "f": True}
    for bad in ("novalue", "=3", "a..b=1 2"):
        with pytest.raises(ConfigError, match="is not of the form key=value"):
            parse_overrides([bad])
    config = load_config(None, ["learning_rate=3e-4", "max_steps=1e3", "losses.discriminator_hidden_sizes=[32]",
                                "model.hidden_sizes=[16,16]", "data.max_yaw=45"], method="depthnet")
    assert config.learning_rate == 3e-4 and config.max_steps == 1000  # PyYAML reads 3e-4 and 1e3 as strings
    assert config.losses.discriminator_hidden_sizes == (32,) and config.data.max_yaw == 45.0
    assert config.model.settings()["hidden_sizes"] == (16, 16) and config.model.settings()["norm"] == "batch"


def test_layers_defaults_preset_yaml_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"method": "depthnet", "preset": "default", "max_steps": 77,
                                    "losses": {"gan_weight": 0.5}}))
    config = load_config(path, ["seed=3"])
    preset = config_class("depthnet").presets["default"]
    assert config.preset == "default" and config.model.preset == "paper"  # from the preset
    assert config.data.identity_scale == preset["data"]["identity_scale"] == 2.0
    assert (config.max_steps, config.losses.gan_weight, config.seed) == (77, 0.5, 3)  # YAML, then overrides
    # --preset on the command line wins over the file's; the file's keys still apply over it.
    config = load_config(path, [], preset="cpu-small")
    assert config.preset == "cpu-small" and config.model.preset == "cpu-small" and config.max_steps == 77
    with pytest.raises(ConfigError, match=r"Unknown preset 'cpu_small' for method depthnet; known presets: "
                                          r"cpu-small, paper, default; did you mean 'cpu-small'\?"):
        load_config(method="depthnet", preset="cpu_small")
    with pytest.raises(ConfigError, match="The config trains 'depthnet' but the command asked for 'prn_dense'"):
        load_config(path, method="prn_dense")
    with pytest.raises(ConfigError, match="does not name its `method`"):
        load_config(None, ["seed=1"])
    with pytest.raises(FileNotFoundError, match="Config file .*missing.yaml does not exist"):
        load_config(tmp_path / "missing.yaml", method="depthnet")
    (tmp_path / "bad.yaml").write_text("method: depthnet\nlosses: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("name", METHODS)
def test_to_dict_round_trips_through_yaml(name, tmp_path):
    preset = next(iter(config_class(name).presets))
    config = load_config(None, ["seed=5", "hub_token=secret"], method=name, preset=preset)
    data = config.to_dict()
    assert "hub_token" not in data
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    again = load_config(tmp_path / "config.yaml")
    assert again.to_dict() == data and again == dataclasses.replace(config, hub_token=None)


def test_shipped_yaml_files_are_their_presets():
    expected = {"depthnet-cpu-small.yaml": "cpu-small", "depthnet-gan.yaml": "default",
                "prn-dense-cpu-small.yaml": "cpu-small", "prn-dense-default.yaml": "default",
                "prn-dense-paper.yaml": "paper", "cyclegan-repair-cpu-small.yaml": "cpu-small",
                "face-fitting-default.yaml": "default", "prn-dense-default-aflw.yaml": "default-aflw",
                "prn-dense-default-aflw-4k.yaml": "default-aflw-4k",
                "face-fitting-profiled.yaml": "default-profiled",
                "face-fitting-profiled-more.yaml": "default-profiled-more"}
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(expected)
    for file, preset in expected.items():
        config = load_config(CONFIGS / file)
        from_preset = load_config(method=config.method, preset=preset, overrides={"output_dir": config.output_dir})
        assert config == from_preset, file
    # What made the embedded defaults, read back from the presets.
    depthnet = load_config(CONFIGS / "depthnet-gan.yaml")
    assert (depthnet.model.preset, depthnet.losses.gan_weight, depthnet.max_steps) == ("paper", 0.01, 8000)
    prn = load_config(CONFIGS / "prn-dense-paper.yaml")
    assert (prn.learning_rate, prn.train_batch_size, prn.max_steps, prn.model.network().sample_size) == (
        1e-4, 16, 602_320, 256)


def test_launcher_settings_default_to_the_launchers_choice():
    config = load_config(method="depthnet")
    assert config.mixed_precision is None and config.gradient_accumulation_steps is None
    config = load_config(None, ["mixed_precision=bf16", "gradient_accumulation_steps=4"], method="depthnet")
    assert (config.mixed_precision, config.gradient_accumulation_steps) == ("bf16", 4)
    with pytest.raises(ConfigError, match="Got 0 for `gradient_accumulation_steps`"):
        load_config(None, ["gradient_accumulation_steps=0"], method="depthnet")


def test_sections_read_as_attributes_and_as_mappings():
    config = load_config(None, ["losses.gan_weight=0.25"], method="depthnet")
    assert config.losses.gan_weight == config.losses["gan_weight"] == config.losses.get("gan_weight") == 0.25
    assert dict(config.losses) == {"gan_weight": 0.25, "discriminator_hidden_sizes": (256, 256),
                                   "discriminator_learning_rate": None}
    assert "gan_weight" in config.losses and config.losses.get("nope", 1) == 1
    with pytest.raises(KeyError):
        config.losses["nope"]


@pytest.mark.parametrize("name", METHODS)
def test_help_lists_every_key_with_type_default_and_the_presets(name):
    cls = config_class(name)
    text = describe_config(cls)
    lines = text.splitlines()
    for key in config_keys(cls):
        if key != "method":
            assert any(line.split()[:1] == [key] for line in lines), key
    for preset in cls.presets:
        assert any(line.startswith(f"  {preset}: ") for line in lines), preset
    learning_rate = next(line for line in lines if line.split()[:1] == ["learning_rate"])
    assert learning_rate.split()[1:3] == ["float", str(cls.__dataclass_fields__["learning_rate"].default)]
