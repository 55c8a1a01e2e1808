# mmdet's runtime with the plugin's hooks: checkpoints that an interrupted
# save never leaves half-written behind last_checkpoint, exact resume of the
# random generators, and a check of the data set's thing/stuff classes
# against the model before training or testing.
_base_ = 'mmdet::_base_/default_runtime.py'
custom_imports = dict(imports=['panseg_plugin'], allow_failed_imports=False)

default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                    max_keep_ckpts=3))
custom_hooks = [
    dict(type='PanopticDataCheckHook'),
    dict(type='ExactResumeHook')
]
# mmdet's DetLocalVisualizer, safe on predictions without any segment
visualizer = dict(
    type='PanopticSegFormerVisualizer',
    vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer')
