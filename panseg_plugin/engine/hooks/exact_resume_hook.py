"""Exact resume: random number generators and data order across a
checkpoint."""
import logging
import random
from typing import List, Optional

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

CHECKPOINT_KEY = 'exact_resume_state'
STATE_VERSION = 1


def get_rng_state() -> dict:
    """States of this process's global generators: python ``random``,
    numpy's legacy global ``RandomState``, torch CPU and (when initialised)
    every CUDA device."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`get_rng_state`. Tensors may come back on a GPU
    (``map_location`` of the checkpoint loader): torch wants them on the
    CPU. CUDA states are set only for the same number of devices."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())
    cuda = state.get('cuda')
    if (cuda is not None and torch.cuda.is_available()
            and len(cuda) == torch.cuda.device_count()):
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def _checkpoint_due(runner, epoch_end: bool) -> bool:
    """Whether a ``CheckpointHook`` of ``runner`` saves at the end of this
    train iteration (``epoch_end=False``) or epoch, by the rule of its own
    ``after_train_iter`` / ``after_train_epoch``."""
    for hook in runner.hooks:
        if not isinstance(hook, CheckpointHook) or hook.by_epoch != epoch_end:
            continue
        begin = getattr(hook, 'save_begin', 0)
        if epoch_end:
            due = hook.every_n_epochs(runner, hook.interval, begin) or (
                hook.save_last and hook.is_last_train_epoch(runner))
        else:
            due = hook.every_n_train_iters(runner, hook.interval, begin) or (
                hook.save_last and hook.is_last_train_iter(runner))
        if due:
            return True
    return False


def sampler_state(dataloader) -> dict:
    """What fixes the order a training sampler yields: its type, seed,
    shuffle flag, data set length and world size."""
    sampler = getattr(dataloader, 'sampler', None)
    _, world_size = get_dist_info()
    return dict(
        type=type(sampler).__name__,
        seed=getattr(sampler, 'seed', None),
        shuffle=getattr(sampler, 'shuffle', None),
        dataset_len=len(dataloader.dataset),
        world_size=world_size)


class _RestoreAfterSkip:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` while the
    loop replays the ``skip`` batches trained before the checkpoint; right
    before the first new batch is fetched it calls ``restore`` and puts the
    original iterator back."""

    def __init__(self, loop, skip: int, restore) -> None:
        self._loop = loop
        self._inner = loop.dataloader_iterator
        self._skip = skip
        self._restore = restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
            return next(self._inner)
        self._restore()
        self._loop.dataloader_iterator = self._inner
        return next(self._inner)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Makes ``--resume`` continue training exactly where it stopped.

    The mmengine gap it closes: mmengine 0.10.7 saves the seed but neither
    the random number generators' states nor anything about the data order,
    so a resumed run
    draws different dropout masks and augmentations than an uninterrupted
    one, and with ``randomness=dict(seed=None)`` its sampler shuffles with
    a new seed. This hook:

    * saves, with every checkpoint, the states of python ``random``, numpy,
      torch and CUDA generators of every rank (gathered from the other
      ranks only at the iterations a ``CheckpointHook`` saves, before
      validation, never on every iteration), and the training sampler's
      seed (key ``'exact_resume_state'``);
    * on resume, rebuilds the training dataloader when its sampler's seed
      differs from the saved one (the resumed run re-seeds itself from the
      checkpoint only after the dataloader is built);
    * restores the generators right before the first new batch is fetched:
      after ``IterBasedTrainLoop`` has replayed the batches it already
      trained on (which puts the sampler, and the workers' augmentation
      generators, where they were), or when an epoch-based run starts;
    * makes validation neutral: the generators are put back after each
      validation, so whether and when one validates does not change
      training.

    With it and a fixed ``randomness`` config, N iterations in one go and
    N/2 + ``--resume`` N/2 give bit-identical weights on the CPU. Loading
    with ``load_from`` without ``resume`` restores nothing. Epoch-based
    loops restore at the start of the resumed epoch; mmengine always
    resumes those at an epoch boundary.

    Add it with::

        custom_hooks = [dict(type='ExactResumeHook')]
    """

    priority = 'NORMAL'

    def __init__(self) -> None:
        self._loaded: Optional[dict] = None
        # Generator states of all ranks at the end of the last train
        # iteration / epoch (gathered only when distributed).
        self._train_states: Optional[List[dict]] = None
        self._train_states_iter: Optional[int] = None
        # Generator states of all ranks when validation started.
        self._val_states: Optional[List[dict]] = None

    # ----------------------------------------------------------- saving
    def _gather(self) -> List[dict]:
        state = get_rng_state()
        _, world_size = get_dist_info()
        return all_gather_object(state) if world_size > 1 else [state]

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        # Only rank 0 runs ``before_save_checkpoint``, so the other ranks'
        # states are gathered now, before ``CheckpointHook`` (VERY_LOW)
        # saves, and only at the iterations where it will save.
        if get_dist_info()[1] > 1 and _checkpoint_due(runner, False):
            self._train_states = self._gather()
            self._train_states_iter = runner.iter

    def after_train_epoch(self, runner) -> None:
        if get_dist_info()[1] > 1 and _checkpoint_due(runner, True):
            self._train_states = self._gather()
            self._train_states_iter = runner.iter

    def before_val(self, runner) -> None:
        self._val_states = self._gather()

    def after_val(self, runner) -> None:
        if self._val_states is not None:
            rank, _ = get_dist_info()
            set_rng_state(self._val_states[rank])
            self._val_states = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._val_states is not None:
            # A best checkpoint saved during validation: what training
            # continues from is the state before validation.
            states = self._val_states
        elif get_dist_info()[1] == 1:
            states = [get_rng_state()]
        elif self._train_states_iter == runner.iter:
            states = self._train_states
        else:
            print_log(
                'ExactResumeHook: a checkpoint saved outside '
                'the end of a train iteration or epoch of a distributed run '
                'gets no generator states; resuming from it will not be '
                'bit-exact.',
                logger='current', level=logging.WARNING)
            states = None
        checkpoint[CHECKPOINT_KEY] = dict(
            version=STATE_VERSION,
            rng=states,
            sampler=sampler_state(runner.train_dataloader))

    # --------------------------------------------------------- restoring
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get(CHECKPOINT_KEY)

    def before_train(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        loop = runner.train_loop
        if loop.iter == 0 and loop.epoch == 0:
            return  # a fresh run, or ``load_from`` without ``resume``
        if loaded is None:
            print_log(
                'ExactResumeHook: the checkpoint holds no '
                'generator states (saved without this hook); the resumed '
                'run will not repeat the original one exactly.',
                logger='current', level=logging.WARNING)
            return
        self._check_sampler(runner, loaded['sampler'])
        states = loaded.get('rng')
        rank, world_size = get_dist_info()
        if states is None or len(states) != world_size:
            print_log(
                'ExactResumeHook: generator states were '
                f'saved for {None if states is None else len(states)} '
                f'process(es), this run has {world_size}; they are not '
                'restored.',
                logger='current', level=logging.WARNING)
            return

        def restore():
            set_rng_state(states[rank])
            print_log(
                'ExactResumeHook: random generators '
                'restored from the checkpoint.', logger='current')

        if hasattr(loop, 'dataloader_iterator') and loop.iter > 0:
            loop.dataloader_iterator = _RestoreAfterSkip(
                loop, loop.iter, restore)
        else:
            restore()

    def _check_sampler(self, runner, saved: dict) -> None:
        """Rebuild the training dataloader when its sampler's seed differs
        from the checkpoint's; warn about any other difference."""
        loop = runner.train_loop
        current = sampler_state(loop.dataloader)
        if current['seed'] != saved['seed'] and isinstance(
                runner.cfg.get('train_dataloader'), dict):
            randomness = runner.cfg.get('randomness') or {}
            dataloader = runner.build_dataloader(
                runner.cfg.train_dataloader,
                seed=runner.seed,
                diff_rank_seed=randomness.get('diff_rank_seed', False))
            rebuilt = sampler_state(dataloader)
            if rebuilt['seed'] == saved['seed']:
                print_log(
                    'ExactResumeHook: training dataloader '
                    f'rebuilt with the checkpoint\'s sampler seed '
                    f'{saved["seed"]} (it was built with '
                    f'{current["seed"]}).', logger='current')
                loop.dataloader = dataloader
                if hasattr(loop, 'dataloader_iterator'):
                    loop.dataloader_iterator = type(
                        loop.dataloader_iterator)(dataloader)
                current = rebuilt
        diff = {k: (saved[k], current[k]) for k in saved
                if saved[k] != current.get(k)}
        if diff:
            print_log(
                'ExactResumeHook: the training sampler '
                'differs from the checkpoint\'s (saved, now): '
                f'{diff}; the resumed run sees the data in another order.',
                logger='current', level=logging.WARNING)
