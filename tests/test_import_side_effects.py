"""Importing panseg_plugin changes nothing of torch, mmengine, mmdet, mmcv or
panopticapi beyond its own registered names and the documented additions
to torch's safe-loading allow list."""
import json
import subprocess
import sys

# Runs in a fresh process: snapshots the namespaces the plugin could touch,
# imports the plugin, and reports every difference.
_CHECK = r'''
import json
import torch, torch.serialization
import mmengine.runner.checkpoint as ckpt
import mmengine.runner, mmengine.hooks, mmengine.model, mmengine.dist
import mmcv.transforms, mmcv.ops
import mmdet.apis, mmdet.evaluation, mmdet.models, mmdet.datasets
import mmdet.registry
import panopticapi.evaluation
from mmengine.registry import Registry
from mmdet.utils import register_all_modules

register_all_modules(init_default_scope=False)

SPACES = {
    'torch': torch, 'torch.serialization': torch.serialization,
    'torch.Tensor': torch.Tensor, 'torch.nn.Module': torch.nn.Module,
    'torch.nn.functional': torch.nn.functional,
    'mmengine.runner.checkpoint': ckpt,
    'CheckpointLoader': ckpt.CheckpointLoader,
    'CheckpointLoader._schemes': ckpt.CheckpointLoader._schemes,
    'Runner': mmengine.runner.Runner,
    'CheckpointHook': mmengine.hooks.CheckpointHook,
    'BaseModel': mmengine.model.BaseModel,
    'mmcv.LoadImageFromFile': mmcv.transforms.LoadImageFromFile,
    'DetInferencer': mmdet.apis.DetInferencer,
    'CocoPanopticMetric': mmdet.evaluation.CocoPanopticMetric,
    'DeformableDETR': mmdet.models.DeformableDETR,
    'CocoPanopticDataset': mmdet.datasets.CocoPanopticDataset,
    'PQStat': panopticapi.evaluation.PQStat,
    'panopticapi.evaluation': panopticapi.evaluation,
}


def snapshot():
    shot = {name: {k: id(v) for k, v in vars(space).items()}
            if not isinstance(space, dict) else
            {k: id(v) for k, v in space.items()}
            for name, space in SPACES.items()}
    for attr, registry in vars(mmdet.registry).items():
        if isinstance(registry, Registry):
            nodes = [registry.root]
            while nodes:
                node = nodes.pop()
                shot[f'registry {node.scope}.{node.name}'] = {
                    k: id(v) for k, v in node.module_dict.items()}
                nodes.extend(node.children.values())
    return shot


before = snapshot()
globals_before = list(torch.serialization.get_safe_globals())
import panseg_plugin  # noqa: E402
from panseg_plugin.utils.checkpoint_safety import mmengine_checkpoint_types
after = snapshot()
changed, added = {}, {}
for name, entries in before.items():
    now = after.get(name, {})
    diff = sorted(k for k, v in entries.items() if now.get(k) != v)
    if diff:
        changed[name] = diff
    new = sorted(set(now) - set(entries))
    if new:
        added[name] = new
# torch registers its own distributed types when they are imported
globals_added = {
    g for g in torch.serialization.get_safe_globals()
    if g not in globals_before
    and not getattr(g, '__module__', '').startswith('torch')}
print(json.dumps(dict(
    changed=changed, added=added,
    globals_as_documented=globals_added == set(
        mmengine_checkpoint_types()))))
'''


def test_import_patches_nothing():
    proc = subprocess.run([sys.executable, '-c', _CHECK],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['changed'] == {}
    # only registries gain names, and only the plugin's (test_registry.py
    # checks that they are the plugin's and collide with nothing)
    assert all(name.startswith('registry ') for name in result['added']), \
        result['added']
    assert result['globals_as_documented']
