"""Run an ONNX export of Panoptic SegFormer on images.

    python demo/onnx_demo.py INPUTS MODEL.onnx --config CONFIG
        [--out-dir outputs] [--pred-score-thr 0.3] [--batch-size 1]
        [--show] [--no-save-vis] [--no-save-pred] [--print-result]
        [--palette none] [--threads N] [--cfg-options k=v ...]

``MODEL.onnx`` comes from ``tools/deployment/pytorch2onnx.py``; ``CONFIG``
is the config it was exported from. onnxruntime (CPU) runs the network;
everything else is the PyTorch code of ``demo/image_demo.py``: mmdet's
:class:`~mmdet.apis.DetInferencer` loads and preprocesses the images with
the config's pipeline and data preprocessor, the config's fusion head
merges the ONNX class and mask logits mask-wise, and the inferencer draws
and saves the results. The outputs under ``--out-dir`` are those of
``demo/image_demo.py`` (``vis/NAME.jpg``, ``preds/NAME.json``,
``preds/NAME_panoptic_seg.png``).

The ONNX model has a fixed input size (``--shape`` of the export): each
preprocessed batch is padded with zeros to it (it must not be larger).
The graph has no padding mask, so the panoptic PNG equals
``demo/image_demo.py``'s exactly when the (resized) images fill the
export size, e.g. 128 x 128 toy images exported with ``--shape 128 128``;
padded images are treated as if the padding were part of the image.

Classes and palette come from the config's test data set.
"""
import argparse
import importlib.util
import os.path as osp
import sys

import torch
import torch.nn.functional as F
from mmdet.apis import DetInferencer
from mmdet.registry import DATASETS
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

import panseg_plugin  # noqa: F401  (checks versions, registers)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _load(name, *path):
    """A module of this repository outside the package, by path."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, osp.join(REPO_ROOT, *path))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


image_demo = _load('panseg_image_demo', 'demo', 'image_demo.py')
onnx_utils = _load('panseg_onnx_utils', 'tools', 'deployment',
                   'panoptic_segformer_onnx.py')


def pad_to(inputs, samples, shape, onnx_file):
    """Pad a preprocessed batch with zeros to the ONNX input size.

    Args:
        inputs (Tensor): (B, 3, h, w) output of the data preprocessor.
        samples (list[DetDataSample]): Its data samples;
            ``batch_input_shape`` and ``pad_shape`` are set to ``shape``.
        shape (tuple[int, int]): (H, W) of the ONNX input.
        onnx_file (str): Named in the error.

    Returns:
        Tensor: (B, 3, H, W).
    """
    height, width = inputs.shape[-2:]
    if height > shape[0] or width > shape[1]:
        names = ', '.join(osp.basename(str(s.metainfo.get('img_path', '?')))
                          for s in samples)
        raise ValueError(
            f'{names}: preprocessed to {height} x {width}, larger than the '
            f'input {shape[0]} x {shape[1]} of {onnx_file}. Export again '
            f'with --shape of at least {height} {width}, or resize smaller '
            'in the config\'s test pipeline.')
    for sample in samples:
        sample.set_metainfo(dict(batch_input_shape=tuple(shape),
                                 pad_shape=tuple(shape)))
    return F.pad(inputs, (0, shape[1] - width, 0, shape[0] - height))


class OnnxPanopticInferencer(DetInferencer):
    """:class:`DetInferencer` whose network runs in onnxruntime.

    Args:
        onnx_file (str): The exported model.
        config (Config): The config it was exported from; its test
            pipeline, data preprocessor and fusion head are used.
        palette (str): As in :class:`DetInferencer`.
        num_threads (int, optional): onnxruntime intra-op threads.
    """

    def __init__(self, onnx_file, config, palette='none',
                 num_threads=None):
        self.onnx_file = onnx_file
        self.session = onnx_utils.create_session(onnx_file, num_threads)
        self.input_shape = onnx_utils.session_input_shape(self.session)
        super().__init__(model=config, weights=None, device='cpu',
                         palette=palette)
        if not hasattr(self.model, 'panoptic_fusion_head'):
            raise TypeError(f'{type(self.model).__name__} has no '
                            'panoptic_fusion_head: the ONNX demo runs '
                            'Panoptic SegFormer configs')

    def _load_weights_to_model(self, model, checkpoint, cfg):
        """No PyTorch weights (the network is in the ONNX file): the class
        names come from the config's test data set."""
        dataset_cfg = cfg.test_dataloader.dataset.copy()
        dataset_cfg['lazy_init'] = True
        meta = DATASETS.build(dataset_cfg).metainfo
        super()._load_weights_to_model(
            model, dict(state_dict=model.state_dict(),
                        meta=dict(dataset_meta=meta)), cfg)

    @torch.no_grad()
    def forward(self, inputs, **kwargs):
        """Preprocess, run onnxruntime, merge with the fusion head.

        Returns:
            list[DetDataSample]: With ``pred_panoptic_seg`` and/or
            ``pred_instances`` at the original image size, as the
            detector's ``predict``.
        """
        data = self.model.data_preprocessor(inputs, False)
        samples = data['data_samples']
        batch = pad_to(data['inputs'], samples, self.input_shape,
                       self.onnx_file)
        outs = onnx_utils.run_session(self.session, batch)
        results = self.model.panoptic_fusion_head.predict(
            outs['cls_scores'], outs['mask_preds'], samples, rescale=True)
        for sample, result in zip(samples, results):
            if 'pan_results' in result:
                sample.pred_panoptic_seg = result['pan_results']
            if 'ins_results' in result:
                sample.pred_instances = result['ins_results']
        return samples


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Panoptic SegFormer ONNX demo (onnxruntime on the CPU)')
    parser.add_argument(
        'inputs', type=str, help='an image file, a folder or a URL')
    parser.add_argument('onnx', help='the .onnx file of pytorch2onnx.py')
    parser.add_argument('--config', required=True,
                        help='the config the model was exported from')
    parser.add_argument('--out-dir', type=str, default='outputs',
                        help='where vis/ and preds/ are written')
    parser.add_argument(
        '--pred-score-thr', type=float, default=0.3,
        help='instances scoring below it are not drawn')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--show', action='store_true')
    parser.add_argument('--no-save-vis', action='store_true')
    parser.add_argument('--no-save-pred', action='store_true')
    parser.add_argument('--print-result', action='store_true')
    parser.add_argument('--palette', default='none',
                        choices=image_demo.PALETTES)
    parser.add_argument('--threads', type=int, default=None,
                        help='onnxruntime intra-op threads')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. '
        'model.panoptic_fusion_head.score_thr=0.5')
    args = parser.parse_args(argv)
    if not osp.isfile(args.onnx):
        parser.error(f'{args.onnx} does not exist: export it with '
                     'tools/deployment/pytorch2onnx.py')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    return args


def main(argv=None):
    """Run the demo; returns DetInferencer's results dict."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    inferencer = OnnxPanopticInferencer(args.onnx, cfg, palette=args.palette,
                                        num_threads=args.threads)
    out_dir = '' if args.no_save_vis and args.no_save_pred else args.out_dir
    results = inferencer(
        args.inputs,
        batch_size=args.batch_size,
        out_dir=out_dir,
        show=args.show,
        pred_score_thr=args.pred_score_thr,
        no_save_vis=args.no_save_vis,
        no_save_pred=args.no_save_pred,
        print_result=args.print_result)
    if out_dir:
        print_log(f'results have been saved at {out_dir}')
    return results


if __name__ == '__main__':
    main()
