"""``tools/test.py`` dumping a test-dev submission (``format_only``).

A COCO-like test-dev folder is made from the toy validation images: the
images, ``image_info_test-dev2017.json`` (image list and detection
categories, no annotation) and ``panoptic_val2017.json`` (the source of the
categories with ``isthing``). mmdet's own ``gen_coco_panoptic_test_info.py``
turns them into ``panoptic_image_info_test-dev2017.json``, as
``docs/test_dev.md`` tells users. No ground truth PNG or segment exists in
that folder. Both ways of ``docs/test_dev.md`` are run: command-line
overrides and a small test-dev config inheriting the model's.
"""
import json
import os
import os.path as osp
import shutil
import sys

import cv2
import mmdet
import numpy as np
import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmengine.config import Config

from panseg_plugin.testing import load_script, untrained_model
from toy_panoptic import TOY_METAINFO, make_toy_panoptic

REPO_ROOT = osp.join(osp.dirname(__file__), '..', '..')
TOY_CONFIG = osp.abspath(osp.join(
    REPO_ROOT, 'projects', 'toy_panoptic', 'configs',
    'panoptic-segformer_r18-tiny_toy-panoptic.py'))
GEN_TEST_INFO = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'misc',
                         'gen_coco_panoptic_test_info.py')
INFO_JSON = 'annotations/panoptic_image_info_test-dev2017.json'
# Keeps the CPU runs small: two images a batch, no worker process.
SMALL_LOADER = ('test_dataloader.batch_size=2',
                'test_dataloader.num_workers=0',
                'test_dataloader.persistent_workers=False')


def read_png_ids(path):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 256**2 * bgr[..., 0]


@pytest.fixture(scope='module')
def dev_set(tmp_path_factory, monkeypatch_module):
    """A test-dev folder without ground truth, and a checkpoint."""
    root = tmp_path_factory.mktemp('format_only')
    toy = make_toy_panoptic(str(root / 'toy'), num_train=1, num_val=3,
                            img_size=(72, 56), seed=1)
    data_root = root / 'coco'
    shutil.copytree(toy['val']['img_dir'], data_root / 'test2017')
    ann_dir = data_root / 'annotations'
    ann_dir.mkdir()
    shutil.copy(toy['val']['panoptic_json'], ann_dir / 'panoptic_val2017.json')
    with open(toy['val']['instances_json']) as f:
        instances = json.load(f)
    image_info = dict(images=instances['images'], licenses=[],
                      categories=[dict(id=c['id'], name=c['name'])
                                  for c in instances['categories']])
    with open(ann_dir / 'image_info_test-dev2017.json', 'w') as f:
        json.dump(image_info, f)

    assert osp.isfile(GEN_TEST_INFO), f'mmdet ships {GEN_TEST_INFO}'
    monkeypatch_module.setattr(sys, 'argv', ['gen', str(ann_dir)])
    load_script(GEN_TEST_INFO, 'gen_coco_panoptic_test_info').main()

    cfg = Config.fromfile(TOY_CONFIG)
    model = untrained_model(cfg)
    ckpt = str(root / 'toy.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=TOY_METAINFO)), ckpt)
    return dict(data_root=str(data_root), checkpoint=ckpt,
                info=str(data_root / INFO_JSON))


@pytest.fixture(scope='module')
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def run_test_py(argv):
    tool = load_script(osp.join(REPO_ROOT, 'tools', 'test.py'),
                       'panseg_tools_test')
    tool.main(argv)


def overrides(dev_set, prefix):
    """The command-line form of docs/test_dev.md."""
    return [
        f'test_dataloader.dataset.data_root={dev_set["data_root"]}/',
        f'test_dataloader.dataset.ann_file={INFO_JSON}',
        'test_dataloader.dataset.data_prefix._delete_=True',
        'test_dataloader.dataset.data_prefix.img=test2017/',
        f'test_evaluator.0.ann_file={dev_set["info"]}',
        'test_evaluator.0.format_only=True',
        f'test_evaluator.0.outfile_prefix={prefix}',
        f'test_evaluator.1.ann_file={dev_set["info"]}',
        'test_evaluator.1.format_only=True',
        f'test_evaluator.1.outfile_prefix={prefix}',
        *SMALL_LOADER,
    ]


def write_test_dev_config(dev_set, prefix, path):
    """The config form of docs/test_dev.md."""
    with open(path, 'w') as f:
        f.write(f"""_base_ = {TOY_CONFIG!r}
data_root = {dev_set['data_root'] + '/'!r}
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file={INFO_JSON!r},
        data_prefix=dict(_delete_=True, img='test2017/')))
test_evaluator = dict(
    _delete_=True,
    type='PanopticSegFormerCocoPanopticMetric',
    format_only=True,
    ann_file=data_root + {INFO_JSON!r},
    outfile_prefix={prefix!r})
""")
    return path


def check_submission(prefix, info_path):
    """Every image listed once; segments_info agrees with its PNG."""
    with open(info_path) as f:
        info = json.load(f)
    assert 'annotations' not in info
    categories = {c['id']: c for c in info['categories']}
    with open(f'{prefix}.panoptic.json') as f:
        annotations = json.load(f)['annotations']
    images = {img['id']: img for img in info['images']}
    assert sorted(a['image_id'] for a in annotations) == sorted(images)
    num_segments = 0
    for ann in annotations:
        img = images[ann['image_id']]
        assert ann['file_name'] == osp.splitext(img['file_name'])[0] + '.png'
        ids = read_png_ids(osp.join(f'{prefix}.panoptic', ann['file_name']))
        assert ids.shape == (img['height'], img['width'])
        segments = ann['segments_info']
        assert len({s['id'] for s in segments}) == len(segments)
        assert {s['id'] for s in segments} == set(np.unique(ids)) - {0}
        for seg in segments:
            assert seg['area'] == int((ids == seg['id']).sum()) > 0
            label = seg['id'] % INSTANCE_OFFSET
            is_thing = seg['id'] >= INSTANCE_OFFSET
            assert categories[seg['category_id']]['name'] == \
                TOY_METAINFO['classes'][label]
            assert seg['isthing'] == categories[seg['category_id']][
                'isthing'] == int(is_thing)
        num_segments += len(segments)
    assert num_segments > 0, 'expected an untrained model to paint segments'
    assert sorted(os.listdir(f'{prefix}.panoptic')) == \
        sorted(a['file_name'] for a in annotations)
    return images


def test_format_only_from_the_command_line(dev_set, tmp_path):
    prefix = str(tmp_path / 'submission' / 'toy')
    run_test_py([TOY_CONFIG, dev_set['checkpoint'],
                 '--work-dir', str(tmp_path / 'work'),
                 '--cfg-options', *overrides(dev_set, prefix)])
    images = check_submission(prefix, dev_set['info'])
    # The instance metric of the config dumps the test-dev detection
    # results as well: thing categories only, listed images only.
    with open(f'{prefix}.segm.json') as f:
        segm = json.load(f)
    thing_ids = {i + 1 for i in range(len(TOY_METAINFO['thing_classes']))}
    assert segm and {d['category_id'] for d in segm} <= thing_ids
    assert {d['image_id'] for d in segm} == set(images)


def test_dev_config_matches_the_command_line_and_needs_no_gt(
        dev_set, tmp_path):
    """The config form sets what the command line does (minus the
    instance metric), and its test set holds images only."""
    from mmdet.registry import DATASETS
    prefix = str(tmp_path / 'submission' / 'toy')
    tool = load_script(osp.join(REPO_ROOT, 'tools', 'test.py'),
                       'panseg_tools_test')
    from_cli = tool.build_config(tool.parse_args(
        [TOY_CONFIG, 'x.pth', '--cfg-options',
         *overrides(dev_set, prefix)]))
    from_file = tool.build_config(tool.parse_args(
        [write_test_dev_config(dev_set, prefix,
                               str(tmp_path / 'test_dev.py')), 'x.pth',
         '--cfg-options', *SMALL_LOADER]))
    assert from_file.test_dataloader == from_cli.test_dataloader
    assert from_file.test_dataloader.dataset.data_prefix == \
        dict(img='test2017/')
    cli_metric, file_metric = from_cli.test_evaluator[0], \
        from_file.test_evaluator
    assert file_metric.type == cli_metric.type == \
        'PanopticSegFormerCocoPanopticMetric'
    for key in ('format_only', 'ann_file', 'outfile_prefix'):
        assert file_metric[key] == cli_metric[key], key
    assert file_metric.format_only is True
    dataset = DATASETS.build(from_file.test_dataloader.dataset)
    assert len(dataset) == 3
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert info['seg_map_path'] is None
        assert info['instances'] == [] and info['segments_info'] == []
