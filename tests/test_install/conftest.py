"""Fixtures of the installation tests."""
import pytest
from install_helpers import Venv


@pytest.fixture
def venv(tmp_path):
    """A fresh virtualenv over this environment (see :class:`Venv`)."""
    return Venv(tmp_path / 'venv')
