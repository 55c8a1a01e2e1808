"""Helpers of the installation tests: subprocesses and throw-away virtual
environments."""
import os.path as osp
import site
import subprocess
import sys
import sysconfig

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(cmd, cwd=REPO_ROOT, timeout=300, **kwargs):
    """Run ``cmd``; stdout and stderr merged into ``.stdout``."""
    return subprocess.run([str(c) for c in cmd], cwd=str(cwd),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, **kwargs)


class Venv:
    """A virtual environment over this one (``--system-site-packages``: the
    installed torch, mmcv, ... are visible, pip is this environment's)."""

    def __init__(self, root):
        self.root = root
        proc = run([sys.executable, '-m', 'venv', '--system-site-packages',
                    '--without-pip', root])
        assert proc.returncode == 0, proc.stdout
        self.python = root / 'bin' / 'python'
        self.site = root / osp.relpath(
            sysconfig.get_paths()['purelib'], sysconfig.get_paths()['data'])
        assert self.site.is_dir(), self.site
        # Run from a virtualenv itself, --system-site-packages would show
        # the base interpreter's packages only: add this one's explicitly.
        (self.site / 'outer_environment.pth').write_text(
            '\n'.join(site.getsitepackages()) + '\n')

    def fake_dist(self, name, version, requires=()):
        """Metadata of ``name==version`` that shadows the real one for pip
        (the module itself stays the base environment's)."""
        info = self.site / f'{name}-{version}.dist-info'
        info.mkdir()
        lines = ['Metadata-Version: 2.1', f'Name: {name}',
                 f'Version: {version}']
        lines += [f'Requires-Dist: {req}' for req in requires]
        (info / 'METADATA').write_text('\n'.join(lines) + '\n')
        (info / 'INSTALLER').write_text('pip\n')
        (info / 'RECORD').write_text('')

    def pip(self, *args, **kwargs):
        return run([self.python, '-m', 'pip', '--disable-pip-version-check',
                    *args], **kwargs)
