"""Classes and palette of the toy panoptic data set.

Plain literals only: this file is a module of the package and also an
mmengine config fragment, which the toy configs inherit
(``_base_ = [..., '../toy_panoptic/metainfo.py']``) and pass on as
``_base_.metainfo``. The class names therefore exist in this one place.
Things come first, then stuff; category ids are 1, 2, ... in this order.
"""
metainfo = dict(
    classes=('circle', 'triangle', 'square', 'sky', 'ground', 'water'),
    thing_classes=('circle', 'triangle', 'square'),
    stuff_classes=('sky', 'ground', 'water'),
    palette=[(220, 20, 60), (0, 160, 60), (250, 170, 30), (120, 180, 240),
             (140, 100, 60), (20, 60, 160)])
