"""Build hook of the `libcellcount` distribution (the metadata is in pyproject.toml).

A regular install from a checkout (`pip install ./bindings/python`) copies the package out of the checkout, so
the binding could no longer find the checkout's build/lib (nor the napari plugin its models/). build_py
therefore records the checkout in the installed package (cellcount/_checkout.py); the binding uses it after
$CELLCOUNT_LIBRARY and before an installed prefix, and ignores it once that folder is no longer a checkout.
Editable installs need no record: the package stays in the checkout.
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyRecordingCheckout(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).resolve().parents[2]  # bindings/python/setup.py -> the checkout
        if (root / "libcellcount" / "include" / "cellcount" / "cellcount.h").is_file():
            out = Path(self.build_lib) / "cellcount" / "_checkout.py"
            out.write_text("# Written by setup.py at install: the checkout this package was installed from.\n"
                           f"CHECKOUT = {str(root)!r}\n")


setup(cmdclass={"build_py": BuildPyRecordingCheckout})
