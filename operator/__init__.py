"""autoflow.operator: the Kubernetes operator (kopf handlers over pure reconcile functions).

This directory sits at the repository's top level (the design lays the components out there)
and is imported as ``autoflow.operator`` through the ``autoflow/`` symlinks. But Python puts
the current directory first on ``sys.path`` for ``python -c``, ``python -m`` and the prompt,
so in the repository root a plain ``import operator`` (which ``collections``, ``functools``
and most of the standard library do) would find this package instead of the standard
library's module. When that happens, this module loads the standard library's ``operator``
and puts it in its own place, so the import gets the real module and nothing breaks. It
imports nothing that imports ``operator`` (only ``sys`` and the frozen import machinery,
which are always loaded). See docs/architecture.md, "The stdlib shadow".
"""

if __name__ == "operator":

    def _install_stdlib_operator() -> None:
        import _frozen_importlib as bootstrap
        import _frozen_importlib_external as external
        import sys

        # The standard library's operator is a module (operator.py); this one is a package.
        # The first sys.path entry that holds a module named operator is the real one.
        for entry in sys.path:
            spec = external.PathFinder.find_spec("operator", [entry])
            if spec is not None and spec.submodule_search_locations is None:
                break
        else:
            raise ImportError(
                "the standard library's operator module is shadowed by Autoflow's operator/ "
                "directory and was not found on sys.path",
                name="operator",
            )
        module = bootstrap.module_from_spec(spec)
        sys.modules["operator"] = module  # the import statement returns this entry
        assert spec.loader is not None
        spec.loader.exec_module(module)

    _install_stdlib_operator()
