"""Everything facehub needs at inference time.

- ``facehub.modeling.faces``: the face front-end (detection, landmarks, pose, identity, aligned crops).
- ``facehub.modeling.geometry``: cameras, affine solvers, meshes, the morphable model, rendering, export.
- ``facehub.modeling.<method>``: one folder per paper, each with its configuration, networks and pipelines.

Every network is a diffusers ``ModelMixin`` + ``ConfigMixin``; every inference bundle a ``DiffusionPipeline``
subclass (see :mod:`facehub.modeling.modeling_utils`). Every pipeline takes one image or a list and returns a
``BaseOutput`` (``.images`` for images, ``output_type="pil"`` or ``"np"``; :mod:`facehub.modeling.pipeline_utils`
holds that boundary, the ``Pose`` tuple and the face-selection errors in one place).
"""
