"""The Lightning side of kd-ls: the Teacher and Student modules and what trains them.

`module` (ClassifierModule, Teacher), `student` (Student), `grouped_steps` (several optimizer
steps per Lightning call), `optim` (optimizers and schedules), `checkpoint` (reading kd-ls
checkpoints), `teacher_cache` (cached teacher logits), `wandb_logger` (W&B with an offline
fallback), `harness` (one `kd-ls fit` run: the Lightning CLI), `internals` (every touch of
Lightning's private state). Configs name the modules as `kd_ls.lightning.Teacher` and
`kd_ls.lightning.Student`.
"""

from kd_ls.lightning.module import ClassifierModule, Teacher
from kd_ls.lightning.student import Student

__all__ = ["ClassifierModule", "Student", "Teacher"]
