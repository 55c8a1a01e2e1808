"""CheckpointHook whose saves cannot leave a broken latest checkpoint."""
import glob
import os
import os.path as osp

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

TMP_SUFFIX = '.tmp'


def _fsync(path: str) -> None:
    """Flush ``path`` (a file or, on POSIX, a directory) to the disk."""
    flags = os.O_RDONLY
    if osp.isdir(path):
        flags |= getattr(os, 'O_DIRECTORY', 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # directories cannot be opened on Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_replace(tmp_path: str, path: str) -> None:
    """Move the complete file ``tmp_path`` onto ``path`` in one step: a
    reader sees either the old file or the new one, never part of it."""
    _fsync(tmp_path)
    os.replace(tmp_path, path)
    _fsync(osp.dirname(osp.abspath(path)))


def atomic_write_text(text: str, path: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and
    :func:`atomic_replace`."""
    tmp_path = path + TMP_SUFFIX
    with open(tmp_path, 'w') as f:
        f.write(text)
    atomic_replace(tmp_path, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` with crash-safe saving.

    mmengine 0.10.7 writes a checkpoint straight to its final name and, with
    ``max_keep_ckpts``, deletes the oldest kept checkpoint *before* writing
    the new one. A crash, a full disk or a kill during the write therefore
    leaves a truncated ``iter_N.pth`` and, with ``max_keep_ckpts=1``, no
    complete checkpoint at all, while ``last_checkpoint`` names the deleted
    file, so ``--resume`` fails.

    This hook, for checkpoints on the local file system:

    1. writes the checkpoint to ``iter_N.pth.tmp``, flushes it to the disk
       and renames it to ``iter_N.pth`` (``os.replace`` is atomic);
    2. then rewrites ``last_checkpoint`` the same way;
    3. only then deletes the checkpoints beyond ``max_keep_ckpts``.

    An interrupted save leaves the previous checkpoint and
    ``last_checkpoint`` untouched (plus a ``*.tmp`` file that the next run's
    ``before_train`` deletes), so auto-resume continues from the last
    complete checkpoint. All arguments are those of ``CheckpointHook``;
    other storage backends (and ``save_best`` files) are saved as mmengine
    does.

    Use it with ``default_hooks = dict(checkpoint=dict(
    type='AtomicCheckpointHook', interval=..., by_epoch=...))``.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._is_local() and is_main_process():
            pattern = osp.join(
                glob.escape(self.out_dir),
                self.filename_tmpl.format('*') + TMP_SUFFIX)
            for stale in sorted(glob.glob(pattern)):
                print_log(f'Removing {stale}, left by an interrupted '
                          'checkpoint save.', logger='current')
                os.remove(stale)

    def _is_local(self) -> bool:
        return isinstance(getattr(self, 'file_backend', None), LocalBackend)

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)

        # Same bookkeeping as mmengine, so the saved message hub records the
        # same kept ids, but the outdated file is deleted only at the end.
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename + TMP_SUFFIX,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        # Only the main process writes (``Runner.save_checkpoint`` is
        # master-only).
        if not is_main_process():
            return
        atomic_replace(self.last_ckpt + TMP_SUFFIX, self.last_ckpt)
        atomic_write_text(self.last_ckpt,
                          osp.join(runner.work_dir, 'last_checkpoint'))

        if outdated is not None and outdated != step:
            path = osp.join(self.out_dir, self.filename_tmpl.format(outdated))
            if osp.isfile(path):
                os.remove(path)
