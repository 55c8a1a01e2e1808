"""Config and model helpers shared by the analysis tools.

``tools/analysis_tools/*.py`` load a config given as a path or as
``package::path`` (an OpenMMLab config, e.g. a mmdet baseline), and build
its model with random weights: every ``Pretrained`` init is removed, so
nothing is downloaded.
"""
import copy
from typing import Optional, Sequence

from mmengine.config import Config


def load_config(path: str,
                cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile``, also for ``package::path`` configs.

    Args:
        path (str): A config file, or ``package::path`` of a config shipped
            with an installed OpenMMLab package (mmengine's ``get_config``).
        cfg_options (dict, optional): Overrides merged into the config,
            as ``--cfg-options`` gives them.

    Returns:
        Config: The config.
    """
    if '::' in path:
        from mmengine.hub import get_config
        cfg = get_config(path)
    else:
        cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def strip_pretrained(node) -> None:
    """Set every ``init_cfg`` of type ``Pretrained`` in a nested config to
    None, in place (dicts, lists and tuples are walked)."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None
        for value in node.values():
            strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            strip_pretrained(value)


def build_model(cfg: Config,
                init_weights: bool = False,
                drop_preprocessor_keys: Sequence[str] = ()):
    """The model of ``cfg`` without any pretrained weights.

    Args:
        cfg (Config): A config with ``model`` (left unchanged) and
            optionally ``default_scope`` (default ``'mmdet'``).
        init_weights (bool): Run ``init_weights`` (random initialisation as
            in training) after building.
        drop_preprocessor_keys (Sequence[str]): Keys removed from
            ``model.data_preprocessor``, e.g. ``batch_augments`` (a fixed
            input size for training).

    Returns:
        torch.nn.Module: The built model, on the CPU.
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    strip_pretrained(model_cfg)
    preprocessor = model_cfg.get('data_preprocessor')
    for key in drop_preprocessor_keys:
        if preprocessor:
            preprocessor.pop(key, None)
    model = MODELS.build(model_cfg)
    if init_weights:
        model.init_weights()
    return model
