"""Maps the four top-level folders onto the ``facehub`` package (``modeling/`` -> ``facehub.modeling``, ...); the
``facehub/`` folder is the package itself (version, top-level exports, the method registry in facehub/methods/).

Metadata lives in pyproject.toml; this file only lists packages, which pyproject's static tables cannot remap.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOTS = ("modeling", "trainers", "hub", "apps")
here = Path(__file__).parent

packages = ["facehub", *(f"facehub.{sub}" for sub in find_packages(str(here / "facehub")))]
package_dir = {name: name.replace(".", "/") for name in packages}
for root in ROOTS:
    for name in [root, *(f"{root}.{sub}" for sub in find_packages(str(here / root)))]:
        packages.append(f"facehub.{name}")
        package_dir[f"facehub.{name}"] = name.replace(".", "/")

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "facehub.hub": ["defaults/**/*"],
        "facehub.modeling": ["**/*.safetensors", "**/*.json"],
        "facehub.trainers": ["**/*.yaml"],
        "facehub.apps": ["**/*.css", "**/*.png", "**/*.jpg"],
    },
    include_package_data=True,
)
