"""The project's own exception types that are not ``ValueError``s (bad input raises
``ValueError`` or ``FileNotFoundError`` naming the value; see ``cli.py`` for exit codes)."""


class TrainingDiverged(RuntimeError):
    """A loss, gradient, weight or optimizer slot became NaN or infinite."""


# Where divergence started, as a training step reports it: in the loss or its gradients, or
# in the state (weights, optimizer slots) an update left.
LOSS_OR_GRADIENTS, STATE = 1, 2


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM); raised where it was, like Ctrl-C's
    ``KeyboardInterrupt``, so that the command ends with its message and exit status 143."""
