"""Install panseg_plugin: Panoptic SegFormer as an MMDetection 3.x plugin.

The requirements are the supported ranges (requirements/runtime.txt), so
``pip install -e .`` keeps an environment's torch and its mmcv with compiled
ops. The exact versions CI tests are requirements/constraints.txt, which
``tools/install.sh`` applies to whatever it has to install (see README
"Installation").
"""
import os.path as osp
import re
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def parse_requirements(name):
    """Read ``requirements/<name>.txt`` without comments or blank lines."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt'),
              encoding='utf-8') as f:
        lines = [line.split('#')[0].strip() for line in f]
    return [line for line in lines if line]


def readme():
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


def get_version():
    with open(osp.join(HERE, 'panseg_plugin', 'version.py'),
              encoding='utf-8') as f:
        return re.search(r"__version__ = '(.+)'", f.read()).group(1)


setup(
    name='panseg_plugin',
    version=get_version(),
    description='Panoptic SegFormer (arXiv 2109.03814 v1) as an '
    'MMDetection 3.x plugin',
    long_description=readme(),
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
