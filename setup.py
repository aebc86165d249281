"""Build hook only (all metadata is in pyproject.toml): install ``memmcl_merge.pth`` at the root of
site-packages, for wheels and for editable installs alike.

The .pth line runs at interpreter start-up and imports :mod:`memmcl_merge._mergekit_hook`, which
(light: no torch, no mergekit) arranges for the ``memmcl`` merge method to be registered when
``mergekit.merge_methods`` is first imported - so the unmodified ``mergekit-yaml`` knows it.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "memmcl_merge.pth"
PTH_LINE = "import memmcl_merge._mergekit_hook\n"


class build_py_with_pth(build_py):
    """``build_py`` that also writes the .pth file to the root of the installed tree.

    Wheel: ``build_lib`` is the root of the wheel (purelib = site-packages).
    Editable (PEP 660): setuptools points the ``install`` command's ``install_lib`` at the unpacked
    editable wheel, whose files all go to site-packages; ``build_lib`` is a scratch folder there.
    """

    def _pth_target(self) -> str:
        if getattr(self, "editable_mode", False):
            return self.get_finalized_command("install").install_lib
        return self.build_lib

    def run(self):
        super().run()
        target = os.path.join(self._pth_target(), PTH_NAME)
        self.mkpath(os.path.dirname(target))
        if not self.dry_run:
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(PTH_LINE)
        self.announce(f"wrote {target}", level=2)

    def get_outputs(self, include_bytecode=True):
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            outputs.append(os.path.join(self.build_lib, PTH_NAME))
        return outputs


setup(cmdclass={"build_py": build_py_with_pth})
