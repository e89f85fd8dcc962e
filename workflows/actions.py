"""What an accepted action may end with: its result or one of the service's refusals."""

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio import workflow
from temporalio.exceptions import ApplicationError, TemporalError

ACTION_FAILED = "ActionFailed"


@contextmanager
def failing_only_the_action(action: str) -> Iterator[None]:
    """Turn an unexpected error in an accepted action (a bug, a value that slipped past the
    checks) into the failure of that one update. Left alone it would fail the workflow task,
    every retry of it too, and the order would answer 503 to everyone until a fix is deployed.
    Errors of the engine (nondeterminism, the sandbox) still fail the task: they must."""
    try:
        yield
    except TemporalError:
        raise
    except Exception as error:
        # The type and the place, never the message: it may quote the values at fault.
        frame = error.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else "?"
        workflow.logger.error(
            "action failed", extra={"action": action, "error": type(error).__name__, "at": where}
        )
        raise ApplicationError(
            f"cannot {action}: it failed inside the service ({type(error).__name__}); what it"
            " did before the failure stands, the order takes other actions, and the operators"
            " find the failure in the worker log",
            type=ACTION_FAILED,
            non_retryable=True,
        ) from None
