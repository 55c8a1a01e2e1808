"""Install panseg_plugin: Panoptic SegFormer as an MMDetection 3.x plugin.

mmcv 2.1.0 must be built with compiled ops before this package is used;
``tools/install.sh`` does it (see README "Installation").
"""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def parse_requirements(name):
    """Read ``requirements/<name>.txt`` without comments or blank lines."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        lines = [line.split('#')[0].strip() for line in f]
    return [line for line in lines if line]


def get_version():
    with open(osp.join(HERE, 'panseg_plugin', 'version.py')) as f:
        return re.search(r"__version__ = '(.+)'", f.read()).group(1)


setup(
    name='panseg_plugin',
    version=get_version(),
    description='Panoptic SegFormer (arXiv 2109.03814 v1) as an '
    'MMDetection 3.x plugin',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    keywords='panoptic segmentation, transformer, mmdetection',
    packages=find_packages(include=['panseg_plugin', 'panseg_plugin.*']),
    python_requires='>=3.8',
    install_requires=parse_requirements('runtime'),
    extras_require=dict(
        tests=parse_requirements('tests'),
        optional=parse_requirements('optional'),
        build=parse_requirements('build')),
    license='Apache License 2.0',
    zip_safe=False)
