# The R-50 50-epoch model (paper Table 1), trained with activation
# checkpointing of its 6 encoder layers (mmdet's `num_cp`, which needs
# `pip install fairscale`): each layer keeps only its input for the backward
# pass and runs its forward again there, dropout masks included. The model,
# its results and its checkpoints are those of the base config (the same
# state-dict keys); only the training memory and time change. One training
# step at 800x1216 on the CPU: 3.7-4.0 GB of memory instead of 7.2-7.5 GB,
# and no slower there (0.86-0.97x the plain step's time, interleaved; on a
# GPU the second pass costs time); model-zoo README, "Speed and memory".
# Not with `--amp` on the CPU: fairscale recomputes without CPU autocast,
# and the model says so at the first step.
_base_ = './panoptic-segformer_r50_8xb1-50e_coco-panoptic.py'

model = dict(encoder=dict(num_cp=6))
