"""Safe loading of mmengine checkpoints on torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True``: its unpickler builds only
tensors, containers and allow-listed classes, so a checkpoint cannot run
code while it loads. mmengine 0.10 calls ``torch.load`` without
``weights_only`` and its checkpoints hold a few objects outside torch's
default list (the message hub's ``HistoryBuffer`` and the numpy arrays and
scalars it and the random-state resume store), so ``--resume``,
``load_from`` and ``tools/test.py CONFIG CKPT`` fail on its own files.

:func:`allow_mmengine_checkpoint_types` adds exactly those types to torch's
allow list (``torch.serialization.add_safe_globals``, torch's mechanism for
libraries to declare data-only types). Loading stays ``weights_only``: a
pickle that names any other global, such as ``os.system`` in a
``__reduce__``, is still refused, and :func:`explain_unsafe_checkpoint`
turns torch's refusal into an error naming the file, the global and the
explicit opt-in (:func:`trust_checkpoints`, ``--trust-checkpoint`` of the
tools) for a file the user trusts.
"""
import os
import pickle
import re
from contextlib import contextmanager
from typing import List, Optional, Tuple, Union

import numpy as np
import torch

# torch reads this variable in every ``torch.load`` that does not pass
# ``weights_only`` itself (mmengine's loaders do not).
TRUST_ENV = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'
HISTORY_BUFFER_METHODS = frozenset({'min', 'max', 'current', 'mean'})
TRUST_HINT = (
    'If you trust this file, load it anyway with --trust-checkpoint '
    '(tools/train.py, tools/test.py), or call '
    'panseg_plugin.utils.trust_checkpoints() before loading, or set the '
    f'environment variable {TRUST_ENV}=1.')


def history_buffer_method(owner: type, name: str):
    """``getattr`` as mmengine checkpoints need it, and no more.

    A ``HistoryBuffer`` pickles its statistics methods (``min``, ``max``,
    ``current``, ``mean`` and any registered with
    ``HistoryBuffer.register_statistics``) as ``getattr(HistoryBuffer,
    name)``. General ``getattr`` would let a pickle reach any attribute of
    an allowed object, so the allow list gets this function under the name
    ``builtins.getattr`` instead: it returns exactly those methods and
    refuses everything else.
    """
    from mmengine.logging import HistoryBuffer

    # the built-in methods (registered in HistoryBuffer.__init__, so not
    # yet in a fresh process that resumes) and any registered since
    allowed = HISTORY_BUFFER_METHODS | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refused getattr({getattr(owner, "__name__", owner)!r}, {name!r}): '
        'only the statistics methods of mmengine\'s HistoryBuffer may be '
        'looked up while loading a checkpoint')


def mmengine_checkpoint_types() -> List[Union[object, Tuple[object, str]]]:
    """The classes and functions an mmengine checkpoint pickles besides
    tensors and plain containers.

    ``HistoryBuffer`` (message hub scalars) keeps numpy arrays and its
    statistics methods (:func:`history_buffer_method`); the numpy
    random state and numpy scalars (e.g. a best score) appear in
    ``meta``/``message_hub``. numpy pickles an array through
    ``_reconstruct``, ``ndarray`` and ``dtype`` (plus the dtype's class on
    numpy >= 1.25), a scalar through ``scalar``. None of them runs code.
    """
    from mmengine.logging import HistoryBuffer
    if int(np.__version__.split('.')[0]) >= 2:
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray
    numeric = 'bBhHiIlLqQefdgFDG?'
    dtype_classes = sorted({type(np.dtype(c)) for c in numeric},
                           key=lambda t: t.__name__)
    return [
        HistoryBuffer, (history_buffer_method, 'builtins.getattr'),
        multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype
    ] + [cls for cls in dtype_classes if cls is not np.dtype]


def allow_mmengine_checkpoint_types() -> None:
    """Add :func:`mmengine_checkpoint_types` to torch's safe globals
    (idempotent; nothing to do on a torch without them)."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return
    present = torch.serialization.get_safe_globals()
    missing = [t for t in mmengine_checkpoint_types() if t not in present]
    if missing:
        add(missing)


def trust_checkpoints() -> None:
    """Explicit opt-in: every later ``torch.load`` of this process that does
    not pass ``weights_only`` unpickles arbitrary objects, i.e. may run
    code. Only for files from a trusted source."""
    os.environ[TRUST_ENV] = '1'


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint refused by torch's weights-only unpickler.

    Args:
        filename (str | None): The file, if known.
        offending (str | None): The global it names, e.g. ``posix.system``.
        reason (str): torch's message.
    """

    def __init__(self, filename: Optional[str], offending: Optional[str],
                 reason: str) -> None:
        self.filename = filename
        self.offending = offending
        what = f'global {offending}' if offending else 'an object'
        super().__init__(
            f'{filename or "a checkpoint"} was refused: its pickle needs '
            f'{what}, which is not a tensor, a container or one of the types '
            'mmengine checkpoints hold, and loading it could run code. '
            f'{TRUST_HINT}\ntorch said: {reason.splitlines()[0]}')


def _loaded_file(traceback) -> Optional[str]:
    """The ``f`` argument of the innermost ``torch.load`` in a traceback."""
    filename = None
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code.co_name == 'load' and \
                frame.f_code.co_filename.endswith('serialization.py'):
            f = frame.f_locals.get('f')
            if isinstance(f, (str, os.PathLike)):
                filename = os.fspath(f)
            elif hasattr(f, 'name'):
                filename = str(f.name)
        traceback = traceback.tb_next
    return filename


@contextmanager
def explain_unsafe_checkpoint(filename: Optional[str] = None):
    """Within the block, torch's weights-only refusal of a checkpoint is
    raised as :class:`UnsafeCheckpointError` naming the file (``filename``
    or the one ``torch.load`` was reading), the global and the opt-in."""
    try:
        yield
    except pickle.UnpicklingError as err:
        if isinstance(err, UnsafeCheckpointError) or \
                'Weights only load failed' not in str(err):
            raise
        match = re.search(r'GLOBAL ([\w.]+)', str(err))
        raise UnsafeCheckpointError(
            filename or _loaded_file(err.__traceback__),
            match.group(1) if match else None, str(err)) from err
