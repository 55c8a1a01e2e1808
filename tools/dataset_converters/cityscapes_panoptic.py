"""Cityscapes panoptic in the files the plugin's data set and mmdet's PQ
metric read, from the official downloads.

cityscapesScripts' ``createPanopticImgs`` (``pip install
cityscapesscripts``) converts ``gtFine/<split>/<city>/*_instanceIds.png``
to COCO panoptic format; this script runs it for each split and then
completes its output for mmdet:

* images are listed as ``<city>/<name>_leftImg8bit.png`` (the script
  writes the bare file name; the images lie in one folder per city);
* each panoptic PNG is named as its image with ``.png``
  (``<name>_leftImg8bit.png`` instead of ``<name>_gtFine_panoptic.png``):
  mmdet's ``CocoPanopticMetric`` finds the ground-truth PNG of a
  prediction by the image's file name;
* categories are listed things first, in the order of the data set's
  classes, as mmdet's metric numbers them in the file's order.

Layout (``data/cityscapes`` holds ``gtFine_trainvaltest.zip`` and
``leftImg8bit_trainvaltest.zip`` unpacked)::

    data/cityscapes/
    ├── leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png
    └── gtFine/
        ├── {train,val}/<city>/<name>_gtFine_instanceIds.png  (and others)
        ├── cityscapes_panoptic_{train,val}.json               (written)
        └── cityscapes_panoptic_{train,val}/<name>_leftImg8bit.png

Example::

    python tools/dataset_converters/cityscapes_panoptic.py data/cityscapes
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys

IMG_SUFFIX = '_leftImg8bit.png'
INSTANCE_SUFFIX = '_gtFine_instanceIds.png'
PANOPTIC_SUFFIX = '_gtFine_panoptic.png'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Cityscapes gtFine to COCO panoptic (cityscapesScripts '
        'createPanopticImgs) for the plugin and mmdet')
    parser.add_argument('root', help='Cityscapes folder with gtFine/ and '
                        'leftImg8bit/ (the data_root of the config)')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'])
    parser.add_argument(
        '--use-train-id', action='store_true',
        help='category ids are train ids (0-18) instead of label ids')
    return parser.parse_args(argv)


def import_create_panoptic_imgs():
    """cityscapesScripts' conversion module, or an ImportError saying how
    to install it."""
    try:
        from cityscapesscripts.preparation import createPanopticImgs
    except ImportError as err:
        raise ImportError(
            'the Cityscapes conversion needs cityscapesScripts: pip install '
            'cityscapesscripts (listed in requirements/optional.txt)'
        ) from err
    return createPanopticImgs


def instance_files(root, split):
    """``{image id: city}`` of the split's ``*_gtFine_instanceIds.png``,
    or a FileNotFoundError naming the pattern and the download."""
    pattern = osp.join(root, 'gtFine', split, '*', '*' + INSTANCE_SUFFIX)
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(
            f'no file matches {pattern}: unpack gtFine_trainvaltest.zip '
            f'from the Cityscapes downloads into {root} (it holds '
            f'gtFine/<split>/<city>/<name>{INSTANCE_SUFFIX})')
    return {osp.basename(f)[:-len(INSTANCE_SUFFIX)]:
            osp.basename(osp.dirname(f)) for f in files}


def complete_split(root, split, cities, out_json, png_dir):
    """Rewrite the JSON of ``createPanopticImgs`` for mmdet (module
    docstring) and rename its PNGs; returns the number of images."""
    with open(out_json) as f:
        data = json.load(f)
    missing = []
    for img in data['images']:
        city = cities[img['id']]
        img['file_name'] = f'{city}/{img["id"]}{IMG_SUFFIX}'
        if not osp.isfile(osp.join(root, 'leftImg8bit', split,
                                   img['file_name'])):
            missing.append(img['file_name'])
    if missing:
        raise FileNotFoundError(
            f'{len(missing)} images of {split} are missing under '
            f'{osp.join(root, "leftImg8bit", split)}, e.g. {missing[:3]}: '
            f'unpack leftImg8bit_trainvaltest.zip into {root}')
    for ann in data['annotations']:
        old = osp.join(png_dir, ann['file_name'])
        ann['file_name'] = f'{ann["image_id"]}{IMG_SUFFIX}'
        new = osp.join(png_dir, ann['file_name'])
        if osp.isfile(old):
            os.replace(old, new)
    # stable: things, then stuff, each in cityscapesScripts' label order
    data['categories'].sort(key=lambda c: not c['isthing'])
    with open(out_json, 'w') as f:
        json.dump(data, f)
    return len(data['images'])


def convert(root, splits=('train', 'val'), use_train_id=False):
    """Convert ``splits`` of the Cityscapes folder ``root``.

    Returns:
        dict: ``{split: (JSON path, PNG folder, number of images)}``.
    """
    module = import_create_panoptic_imgs()
    gt_dir = osp.join(root, 'gtFine')
    done = {}
    for split in splits:
        cities = instance_files(root, split)
        module.convert2panoptic(cityscapesPath=gt_dir, outputFolder=gt_dir,
                                useTrainId=use_train_id, setNames=[split])
        name = f'cityscapes_panoptic_{split}' + \
            ('_trainId' if use_train_id else '')
        out_json = osp.join(gt_dir, name + '.json')
        png_dir = osp.join(gt_dir, name)
        num = complete_split(root, split, cities, out_json, png_dir)
        done[split] = (out_json, png_dir, num)
    return done


def main(argv=None):
    args = parse_args(argv)
    done = convert(args.root, args.splits, args.use_train_id)
    print()
    for split, (out_json, png_dir, num) in done.items():
        print(f'{split}: {num} images, {out_json}, {png_dir}/')
    return 0


if __name__ == '__main__':
    sys.exit(main())
