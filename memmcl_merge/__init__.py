"""MEM-MCL: multi-stage evolutionary model merging with meta-data driven curriculum learning."""

__version__ = "0.1.0"


def _install_mergekit_hook() -> None:
    # Registers the `memmcl` merge method with mergekit: now if mergekit.merge_methods is already
    # imported, else when it is (a sys.meta_path hook; imports neither torch nor mergekit here).
    from memmcl_merge import _mergekit_hook

    _mergekit_hook.install()


_install_mergekit_hook()
