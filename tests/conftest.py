import pytest


def pytest_addoption(parser):
    parser.addoption('--runslow', action='store_true', default=False,
                     help='also run tests marked slow')


def pytest_collection_modifyitems(config, items):
    if config.getoption('--runslow'):
        return
    skip_slow = pytest.mark.skip(reason='slow: run with --runslow')
    for item in items:
        if 'slow' in item.keywords:
            item.add_marker(skip_slow)


def pytest_configure(config):
    # mmdet's tests do the same: names resolve in the mmdet scope, where the
    # plugin registers its classes.
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import panseg_plugin  # noqa: F401
