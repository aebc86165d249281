"""Post-import hook: register plugin merge methods when ``mergekit.merge_methods`` is first imported.

mergekit 0.1.5 has no plugin loader: ``mergekit-yaml`` only knows the methods that
``mergekit.merge_methods.registry`` registers itself. The ``memmcl_merge.pth`` file that this
package installs at the root of site-packages runs ``import memmcl_merge._mergekit_hook`` at
interpreter start-up; importing :mod:`memmcl_merge` calls :func:`install`, which puts a tiny finder
at the front of ``sys.meta_path``. When ``mergekit.merge_methods`` is imported, the finder lets the
normal machinery load it and then loads every entry point of the group ``mergekit.merge_methods``
(see :data:`ENTRY_POINT_GROUP`) and registers what they provide, plus memmcl_merge's own methods
(also when its entry points are not installed). The finder then removes itself.

Start-up cost: this module imports nothing but :mod:`sys` (no torch, no mergekit); until mergekit
is imported the finder does one string comparison per import.

An entry point may name

* a ``MergeMethod`` instance: it is registered under its ``spec.name``;
* an iterable of ``MergeMethod`` instances: each is registered;
* a callable taking no arguments: it is called; if it returns a method or an iterable of methods,
  those are registered (a callable that registers by itself may return ``None``).

Registration is idempotent: a method object that is already registered is skipped. Another object
under an existing name (for example a built-in) is not replaced; a warning says so.
"""

import sys

TARGET_MODULE = "mergekit.merge_methods"
ENTRY_POINT_GROUP = "mergekit.merge_methods"

_finder = None


def register_method(method) -> bool:
    """Register ``method`` with mergekit unless it (the same object) is already there.

    Returns True when it was added now. Raises ValueError when a different method already uses the
    name; an object of the same class with the same kernel function (by module and qualified name,
    as a module reload re-creates it) counts as already registered.
    """
    from mergekit.merge_methods import registry

    name = method.spec.name
    existing = {m.spec.name: m for m in registry.registered_methods()}.get(name)
    if existing is None:
        registry.register(method)
        return True
    if existing is method:
        return False
    if _origin(existing) == _origin(method):  # the same definition, re-created by a module reload
        return False
    raise ValueError(f"another merge method is already registered as {name!r}: {existing!r}")


def _origin(method) -> tuple:
    kinds = [type(method)]
    implementation = getattr(method, "implementation", None)
    if implementation is not None:
        kinds.append(implementation)
    return tuple((getattr(k, "__module__", None), getattr(k, "__qualname__", None)) for k in kinds)


def _register_provided(obj, origin: str) -> list:
    from mergekit.merge_methods.base import MergeMethod

    if not isinstance(obj, MergeMethod) and callable(obj):
        obj = obj()
    if obj is None:
        return []
    methods = [obj] if isinstance(obj, MergeMethod) else list(obj)
    added = []
    for method in methods:
        if not isinstance(method, MergeMethod):
            raise TypeError(f"entry point {origin} provided {method!r}, not a mergekit MergeMethod")
        if register_method(method):
            added.append(method.spec.name)
    return added


def _initializing(module_name: str) -> bool:
    module = sys.modules.get(module_name)
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def register_entry_point_methods() -> list:
    """Load the ``mergekit.merge_methods`` entry points and register their methods.

    Returns the names added now. A failing entry point gives a warning and does not stop the others.
    An entry point whose module is still being imported (mergekit was imported *from* that module)
    is skipped: such a module registers its methods itself when it finishes (ours does).
    """
    import warnings
    from importlib.metadata import entry_points

    added = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module_name = ep.value.split(":", 1)[0].strip()
        try:
            added.extend(_register_provided(ep.load(), f"{ep.name} = {ep.value}"))
        except (ImportError, AttributeError):
            if any(_initializing(m) for m in _parents(module_name)):
                continue
            warnings.warn(f"memmcl_merge: cannot load mergekit merge-method entry point "
                          f"{ep.name} = {ep.value}: {sys.exc_info()[1]!r}", RuntimeWarning, stacklevel=2)
        except Exception as error:  # noqa: BLE001 - a broken plugin must not break mergekit
            warnings.warn(f"memmcl_merge: merge-method entry point {ep.name} = {ep.value} failed: {error!r}",
                          RuntimeWarning, stacklevel=2)
    return added


def _register_own_methods() -> None:
    """memmcl_merge's own methods, also when its entry points are not installed (source checkout)."""
    import warnings

    if any(_initializing(m) for m in ("memmcl_merge.merge_methods", "memmcl_merge.merge_methods.memmcl")):
        return  # that module registers its methods when it finishes importing
    try:
        from memmcl_merge.merge_methods import register_methods

        register_methods()
    except Exception as error:  # noqa: BLE001 - must not break the import of mergekit
        warnings.warn(f"memmcl_merge: cannot register its merge methods: {error!r}", RuntimeWarning,
                      stacklevel=2)


def _on_mergekit_loaded() -> None:
    uninstall()
    register_entry_point_methods()
    _register_own_methods()


def _parents(module_name: str) -> list:
    parts = module_name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


class _RegisteringLoader:
    """Wraps the real loader of ``mergekit.merge_methods``; registers plugins after it executes."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        # Leave no trace of the wrapper on the module.
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _on_mergekit_loaded()

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _MergeMethodsFinder:
    """A ``sys.meta_path`` finder that only reacts to ``mergekit.merge_methods``."""

    _searching = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET_MODULE or self._searching:
            return None
        self._searching = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._searching = False
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec

    def invalidate_caches(self) -> None:
        pass


def install() -> None:
    """Arrange for plugin methods to be registered with mergekit (idempotent, cheap).

    If ``mergekit.merge_methods`` is already imported, they are registered now; otherwise a finder
    waits for that import.
    """
    global _finder
    if TARGET_MODULE in sys.modules:
        if not _initializing(TARGET_MODULE):
            _on_mergekit_loaded()
        return
    if _finder is None:
        _finder = _MergeMethodsFinder()
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Remove the finder (registered methods stay registered)."""
    global _finder
    if _finder is not None:
        while _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
    _finder = None


def installed() -> bool:
    """Whether the finder is waiting for ``mergekit.merge_methods``."""
    return _finder is not None and _finder in sys.meta_path
