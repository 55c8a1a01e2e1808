"""COCO panoptic data set that checks its categories and survives bad files.

Differences from mmdet's ``CocoPanopticDataset`` (same ``data_info``):

* Labels follow ``metainfo['classes']`` by category **name**. mmdet numbers
  the categories in the order the JSON lists them
  (``COCO.get_cat_ids(cat_names=classes)`` keeps the file's order), so a
  JSON listing stuff before things, or any order but ``classes``', gives
  labels that are not ``classes``' indices and a model that takes labels
  ``< num_things_classes`` for things learns the wrong split.
* ``classes`` must be ``thing_classes + stuff_classes``, every class must be
  a JSON category and agree with its ``isthing``; otherwise a ``ValueError``
  naming the annotation file says what to change. Categories outside
  ``classes`` become void (one warning), instead of mmdet's ``KeyError``.
* A ``filter_cfg`` that removes every image raises, naming ``filter_cfg``
  and the annotation file, instead of failing later in the sampler.
* A sample whose image or PNG does not decode (found by
  :func:`find_corrupt_file` when the pipeline fails), or whose PNG is not
  of its image's size, is skipped in training (mmengine draws another
  index when ``prepare_data`` returns ``None``), with one warning per file,
  and counted in ``num_skipped`` over all data loader workers; in testing
  the error, naming the file, propagates. ``PanopticDataCheckHook`` finds
  the size mismatches of the whole set before the first iteration.
* The PNG of an image is its annotation record's ``file_name``.
"""
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmdet.datasets import CocoPanopticDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get_local_path, load
from mmengine.logging import print_log

from .panoptic_metainfo import check_panoptic_metainfo
from .transforms.loading import (PanopticSegFormerCorruptFileError,
                                 PanopticSegFormerSizeMismatchError,
                                 find_corrupt_file, warn_once)

# Slots of the shared skip counter: the main process and 63 data loader
# workers count apart (no lost increments); more workers share slots.
_COUNTER_SLOTS = 64


@DATASETS.register_module()
class PanopticSegFormerCocoPanopticDataset(CocoPanopticDataset):
    """COCO panoptic data set (native ``panoptic_*.json`` + PNG folder).

    Arguments as mmdet's ``CocoPanopticDataset``. Each ``data_info`` also
    holds ``ignored_ids``: ids of segments made void here (class outside
    ``metainfo``, zero area), so that the loading transform does not report
    them as unknown PNG ids. A thing segment with pixels but an empty box
    (mmdet drops it) keeps its segment; its instance has
    ``bbox_from_mask=True`` and the loading transform takes its box from
    its mask.

    Attributes:
        cat_ids (list[int]): Category id of each label.
        cat2label (dict[int, int]): Category id to label.
        label2cat (dict[int, int]): Label to category id.
        num_skipped (int): Training samples skipped for bad files, summed
            over this process and its data loader workers (a counter in
            shared memory; copies made with ``deepcopy`` count apart).
    """

    def __init__(self, *args, **kwargs) -> None:
        self._skip_counts = torch.zeros(
            _COUNTER_SLOTS, dtype=torch.int64).share_memory_()
        super().__init__(*args, **kwargs)

    @property
    def num_skipped(self) -> int:
        return int(self._skip_counts.sum())

    def _count_skip(self) -> None:
        worker = torch.utils.data.get_worker_info()
        slot = 0 if worker is None else \
            1 + worker.id % (_COUNTER_SLOTS - 1)
        self._skip_counts[slot] += 1

    def load_data_list(self) -> List[dict]:
        """Read the panoptic JSON; one ``data_info`` per image."""
        with get_local_path(self.ann_file,
                            backend_args=self.backend_args) as local_path:
            raw = load(local_path, file_format='json')
        self._map_categories(raw.get('categories', []))
        records: Dict[int, dict] = {}
        for record in raw.get('annotations', []):
            records[record['image_id']] = record
        self._num_void_segments = 0
        self._num_empty_boxes = 0
        self._void_names = set()
        data_list = [
            self.parse_data_info(dict(
                raw_img_info=dict(img, img_id=img['id']),
                raw_ann_info=records.get(img['id'])))
            for img in raw.get('images', [])
        ]
        if self._num_void_segments:
            warn_once(('void-categories', self.ann_file), (
                f'{self.ann_file}: {self._num_void_segments} segments of '
                f'categories outside metainfo["classes"] '
                f'({sorted(self._void_names)}) are treated as void'))
        if self._num_empty_boxes:
            warn_once(('empty-boxes', self.ann_file), (
                f'{self.ann_file}: {self._num_empty_boxes} thing segments '
                f'with pixels have an empty bbox (width or height < 1); '
                f'their boxes are taken from their masks. The boxes of this '
                f'file may be wrong elsewhere too (mmdet\'s ade20k2coco.py '
                f'writes wrong thing boxes): load annotations with '
                f'box_from_mask=True to take every thing box from its mask'))
        return data_list

    def _map_categories(self, categories: List[dict]) -> None:
        """Set ``cat_ids``/``cat2label``/``label2cat`` by class name and
        check the class lists against the JSON."""
        things, stuff = check_panoptic_metainfo(self.metainfo,
                                                self.ann_file)
        classes = things + stuff
        by_name: Dict[str, dict] = {}
        for cat in categories:
            if cat['name'] in by_name:
                raise ValueError(f'{self.ann_file}: category name '
                                 f'"{cat["name"]}" is listed twice')
            by_name[cat['name']] = cat
        missing = [name for name in classes if name not in by_name]
        if missing:
            raise ValueError(
                f'{self.ann_file} has no category named {missing}; '
                f'metainfo["classes"] must use names from its categories: '
                f'{sorted(by_name)}')
        wrong = [name for name in classes
                 if bool(by_name[name].get('isthing', 0)) !=
                 (name in things)]
        if wrong:
            raise ValueError(
                f'{self.ann_file}: isthing of {wrong} disagrees with '
                f'metainfo thing_classes/stuff_classes; move them to the '
                f'other list')
        self.cat_ids = [by_name[name]['id'] for name in classes]
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.label2cat = dict(enumerate(self.cat_ids))
        self._thing_cat_ids = {by_name[name]['id'] for name in things}
        self._cat_names = {cat['id']: cat['name'] for cat in categories}
        file_order = [c['id'] for c in categories if c['name'] in classes]
        if file_order != self.cat_ids:
            warn_once(('category-order', self.ann_file), (
                f'{self.ann_file} lists its categories in another order than '
                f'metainfo["classes"]; this dataset maps them by name, but '
                f'mmdet\'s CocoPanopticMetric and CocoMetric with ann_file '
                f'number them in the file\'s order and would score labels '
                f'as the wrong categories: reorder "categories" in the JSON '
                f'to follow metainfo["classes"] before evaluating with them'))

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """``data_info`` of one image.

        Args:
            raw_data_info (dict): ``raw_img_info`` (the JSON ``images``
                entry plus ``img_id``) and ``raw_ann_info`` (its
                ``annotations`` record, or None).

        Returns:
            dict: As mmdet's, plus ``ignored_ids``.
        """
        img = raw_data_info['raw_img_info']
        record: Optional[dict] = raw_data_info['raw_ann_info']
        seg_prefix = self.data_prefix.get('seg', None)
        seg_map_path = None
        if seg_prefix:
            png = record['file_name'] if record and 'file_name' in record \
                else osp.splitext(img['file_name'])[0] + '.png'
            seg_map_path = osp.join(seg_prefix, png)
        data_info = dict(
            img_path=osp.join(self.data_prefix['img'], img['file_name']),
            img_id=img['img_id'],
            seg_map_path=seg_map_path,
            height=img['height'],
            width=img['width'])
        if self.return_classes:
            data_info['text'] = self.metainfo['thing_classes']
            data_info['stuff_text'] = self.metainfo['stuff_classes']
            data_info['custom_entities'] = True
        instances, segments, ignored = [], [], []
        for ann in (record or {}).get('segments_info', []):
            x1, y1, w, h = ann['bbox']
            label = self.cat2label.get(ann['category_id'])
            if label is None:
                self._num_void_segments += 1
                self._void_names.add(self._cat_names.get(
                    ann['category_id'], f'id {ann["category_id"]}'))
            if label is None or ann['area'] <= 0:
                ignored.append(ann['id'])
                continue
            # a crowd thing is void for the thing targets (its pixels keep
            # the label in gt_seg_map) and an ignored box, as in mmdet
            is_thing = ann['category_id'] in self._thing_cat_ids
            is_crowd = bool(ann.get('iscrowd', 0))
            if is_thing and not is_crowd:
                instance = dict(bbox=[x1, y1, x1 + w, y1 + h],
                                bbox_label=label, ignore_flag=0)
                if w < 1 or h < 1:
                    # a segment with pixels but an empty box (mmdet's
                    # ade20k2coco.py writes such thing boxes): mmdet drops
                    # the segment; here its box is taken from its mask
                    instance['bbox_from_mask'] = True
                    self._num_empty_boxes += 1
                instances.append(instance)
            segments.append(dict(id=ann['id'], category=label,
                                 is_thing=is_thing and not is_crowd))
        data_info.update(instances=instances, segments_info=segments,
                         ignored_ids=ignored)
        return data_info

    def filter_data(self) -> List[dict]:
        """mmdet's filter (``filter_empty_gt``, ``min_size``; nothing in
        test mode), raising when no image is left."""
        if not self.data_list:
            raise ValueError(f'{self.ann_file} lists no images')
        kept = super().filter_data()
        removed = len(self.data_list) - len(kept)
        if not kept:
            cfg = self.filter_cfg or {}
            no_things = sum(
                not any(s['is_thing'] for s in d['segments_info'])
                for d in self.data_list)
            small = sum(
                min(d['width'], d['height']) < cfg.get('min_size', 0)
                for d in self.data_list)
            raise ValueError(
                f'filter_cfg={self.filter_cfg} removed all '
                f'{len(self.data_list)} images of {self.ann_file} '
                f'({no_things} have no non-crowd thing segment, {small} are '
                f'smaller than min_size). Set filter_cfg=dict('
                f'filter_empty_gt=False) to keep stuff-only images, lower '
                f'min_size, or check ann_file')
        if removed:
            print_log(
                f'filter_cfg={self.filter_cfg} removed {removed} of '
                f'{len(self.data_list)} images of {self.ann_file}',
                logger='current')
        return kept

    def prepare_data(self, idx: int) -> Optional[dict]:
        """The pipeline's output, or ``None`` (mmengine then draws another
        index) when a file of a training sample does not decode or its PNG
        is not of its image's size.

        When the pipeline fails, the sample's image and PNG are decoded
        once more to tell a corrupt file (skipped in training with one
        warning per file, raised naming the file in testing) from any
        other error (raised as it is).
        """
        try:
            return super().prepare_data(idx)
        except PanopticSegFormerSizeMismatchError as err:
            if self.test_mode:
                raise
            self._count_skip()
            warn_once(('size', err.path),
                      f'skipping training samples with this file (warned '
                      f'once per file): {err}')
            return None
        except Exception as err:
            corrupt = err if isinstance(
                err, PanopticSegFormerCorruptFileError) else None
            if corrupt is None:
                info = self.get_data_info(idx)
                corrupt = find_corrupt_file(
                    (info.get('img_path'), info.get('seg_map_path')),
                    self.backend_args)
            if corrupt is None:
                raise
            if self.test_mode:
                if corrupt is err:
                    raise
                raise corrupt from err
            self._count_skip()
            warn_once(('corrupt', corrupt.path),
                      f'skipping training samples with this file (warned '
                      f'once per file): {corrupt}')
            return None
