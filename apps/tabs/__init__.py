"""Built-in tabs of the demo hub; each module registers its tab with :func:`facehub.apps.registry.register_tab`."""
