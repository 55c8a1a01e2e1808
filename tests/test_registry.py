"""Importing panseg_plugin registers its classes into mmdet's registries,
under names of its own that never shadow an OpenMMLab name."""
import json
import subprocess
import sys

import pytest
from mmengine.registry import Registry

import mmdet.registry
import panseg_plugin  # noqa: F401

# Which mmdet registry each main class of the plugin must be found in.
EXPECTED = {
    'MODELS': ('PanopticSegFormer', 'PanopticSegFormerHead',
               'PanopticSegFormerFusionHead'),
    'TASK_UTILS': ('PanopticSegFormerAssigner', ),
    'DATASETS': ('PanopticSegFormerCocoPanopticDataset', ),
    'TRANSFORMS': ('PanopticSegFormerLoadPanopticAnnotations', ),
    'HOOKS': ('AtomicCheckpointHook', 'ExactResumeHook',
              'PanopticDataCheckHook'),
    'METRICS': ('PanopticSegFormerCocoPanopticMetric', ),
    'VISUALIZERS': ('PanopticSegFormerVisualizer', ),
}
NAME_PREFIXES = ('PanopticSegFormer', 'Toy')
# Engine parts that are not specific to the model are named for their job.
JOB_NAMES = set(EXPECTED['HOOKS'])

# Runs without the plugin: for every mmdet registry in mmdet.registry, every
# key of its whole registry tree (mmengine's root, mmdet, mmcv, ...), once
# all of mmdet is imported.
_DUMP_OPENMMLAB_KEYS = '''
import json
from mmengine.registry import Registry
import mmdet.registry
from mmdet.utils import register_all_modules

register_all_modules(init_default_scope=False)

def tree_keys(registry):
    keys = set(registry.module_dict)
    for child in registry.children.values():
        keys |= tree_keys(child)
    return keys

keys = {}
for attr, registry in vars(mmdet.registry).items():
    if isinstance(registry, Registry) and registry.scope == 'mmdet':
        registry.import_from_location()
        keys[attr] = sorted(tree_keys(registry.root))
print(json.dumps(keys))
'''


def mmdet_registries():
    """{attribute name in mmdet.registry: Registry}, e.g. 'MODELS'; the
    ``MMENGINE_*`` roots it re-exports are reached through ``.root``."""
    return {
        attr: registry
        for attr, registry in vars(mmdet.registry).items()
        if isinstance(registry, Registry) and registry.scope == 'mmdet'
    }


def plugin_entries(registry):
    """Names in ``registry`` bound to objects defined under panseg_plugin."""
    return sorted(
        name for name, obj in registry.module_dict.items()
        if getattr(obj, '__module__', '').startswith('panseg_plugin'))


def tree_plugin_entries(registry):
    """:func:`plugin_entries` of the whole tree of ``registry``'s root, so a
    class registered into mmengine's or mmcv's node is checked as well."""
    names, nodes = set(), [registry.root]
    while nodes:
        node = nodes.pop()
        names.update(plugin_entries(node))
        nodes.extend(node.children.values())
    return names


@pytest.fixture(scope='module')
def openmmlab_keys():
    """{registry attribute: set of names} of a process without the plugin."""
    proc = subprocess.run(
        [sys.executable, '-c', _DUMP_OPENMMLAB_KEYS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    keys = json.loads(proc.stdout.strip().splitlines()[-1])
    return {attr: set(names) for attr, names in keys.items()}


def test_subprocess_sees_mmdet_and_no_plugin(openmmlab_keys):
    assert 'Mask2Former' in openmmlab_keys['MODELS']
    assert 'HungarianAssigner' in openmmlab_keys['TASK_UTILS']
    assert 'CocoPanopticMetric' in openmmlab_keys['METRICS']
    assert not any(name.startswith('PanopticSegFormer')
                   for names in openmmlab_keys.values() for name in names)


@pytest.mark.parametrize('attr, names', sorted(EXPECTED.items()))
def test_main_classes_are_registered(attr, names):
    registry = getattr(mmdet.registry, attr)
    missing = sorted(set(names) - set(plugin_entries(registry)))
    assert not missing, f'not registered in mmdet.registry.{attr}: {missing}'


def test_plugin_registers_something():
    assert any(tree_plugin_entries(registry)
               for registry in mmdet_registries().values())


def test_plugin_names_follow_naming_rule():
    bad = {
        attr: sorted(n for n in tree_plugin_entries(r)
                     if not n.startswith(NAME_PREFIXES)
                     and n not in JOB_NAMES)
        for attr, r in mmdet_registries().items()
    }
    bad = {attr: names for attr, names in bad.items() if names}
    assert not bad, (f'plugin names must start with {NAME_PREFIXES} or be '
                     f'one of {sorted(JOB_NAMES)}: {bad}')


def test_plugin_names_do_not_collide_with_openmmlab(openmmlab_keys):
    collisions = {}
    for attr, registry in mmdet_registries().items():
        clash = tree_plugin_entries(registry) & openmmlab_keys[attr]
        if clash:
            collisions[attr] = sorted(clash)
    assert not collisions, (
        f'plugin names shadow OpenMMLab names: {collisions}')


def test_importing_the_package_alone_registers_every_class():
    """What ``custom_imports=dict(imports=['panseg_plugin'])`` does, in a
    fresh process: every class a config may name is found from the mmdet
    scope (tests import submodules themselves, which would hide a module
    the package forgets to import)."""
    code = (
        'import json, panseg_plugin, mmdet.registry as r\n'
        'from mmengine.registry import DefaultScope\n'
        'DefaultScope.get_instance("check", scope_name="mmdet")\n'
        f'expected = {dict(EXPECTED)!r}\n'
        'missing = [n for a, names in expected.items() for n in names\n'
        '           if getattr(r, a).get(n) is None]\n'
        'print(json.dumps(missing))\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
