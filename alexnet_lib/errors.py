"""The project's own exception types that are not ``ValueError``s (bad input raises
``ValueError`` or ``FileNotFoundError`` naming the value; see ``cli.py`` for exit codes)."""


class TrainingDiverged(RuntimeError):
    """A loss, gradient, weight or optimizer slot became NaN or infinite."""
