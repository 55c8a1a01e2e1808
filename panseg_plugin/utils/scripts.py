"""Loading a command-line script (``tools/``, ``demo/``, ``projects/``)
as a module, for the tools that use each other and for tests: those
folders are not packages."""
import importlib.util
import os.path as osp
from types import ModuleType
from typing import Optional


def load_script(path: str, name: Optional[str] = None) -> ModuleType:
    """Execute the Python file ``path`` as a fresh module.

    Args:
        path (str): The script's file.
        name (str, optional): Module name; the file's stem by default.

    Returns:
        ModuleType: The loaded module (its ``main`` not called).
    """
    if name is None:
        name = osp.splitext(osp.basename(str(path)))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
