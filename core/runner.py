"""The worker's workflow runner: the SDK's sandbox, refusing to run a workflow task that the
engine's worker core hands over ahead of its time.

Seen under worker restarts (issue 12): a read (a query) of an order whose next workflow task
was still waiting on the killed worker's queue reached the new worker as a legacy query task.
Its history already held events of that waiting task (a fired timer), and the worker core ran
the workflow code on them there and then, at the start time of the task before, and later sent
the commands it produced as the waiting task's answer, with any update of that task after
them. A replay of the recorded history runs the same events in the task's own activation, at
its own start time and after its updates: other commands, so every later task of the order
failed with a nondeterminism error, for good.

Such an activation is recognised by history that grew while the time did not: every workflow
task the engine starts has a later start time than the one before. Failing it makes the core
drop the workflow from its cache (the query is answered with an error and retried by the
caller), so the waiting task later runs on a fresh replay of the history, exactly as any
replay will.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import Info, _Definition

log = structlog.get_logger("worker")

EARLY_TASK = (
    "workflow task refused: its events came without a workflow task start of their own "
    "(a legacy query on a restarted worker); it runs again on a fresh replay"
)


@dataclass(frozen=True)
class TaskOrderRunner(WorkflowRunner):
    """The sandboxed runner, with instances that refuse an early workflow task."""

    inner: WorkflowRunner = field(default_factory=SandboxedWorkflowRunner)

    def prepare_workflow(self, defn: _Definition) -> None:
        self.inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return TaskOrderInstance(self.inner.create_instance(det))

    def set_worker_level_failure_exception_types(
        self, types: Sequence[type[BaseException]]
    ) -> None:
        self.inner.set_worker_level_failure_exception_types(types)


class TaskOrderInstance(WorkflowInstance):
    def __init__(self, inner: WorkflowInstance) -> None:
        self.inner = inner
        self.last_time: int | None = None
        self.last_length = 0

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        if self.is_early(act):
            log.warning(
                "workflow task refused", reason="events without a task start", run_id=act.run_id
            )
            completion = WorkflowActivationCompletion(run_id=act.run_id)
            completion.failed.failure.message = EARLY_TASK
            return completion
        if not all(job.HasField("query_workflow") for job in act.jobs):
            self.last_time = act.timestamp.ToNanoseconds()
            self.last_length = act.history_length
        return self.inner.activate(act)

    def is_early(self, act: WorkflowActivation) -> bool:
        return (
            not act.is_replaying
            and self.last_time is not None
            and act.timestamp.ToNanoseconds() <= self.last_time
            and act.history_length > self.last_length
            and any(
                not job.HasField("query_workflow") and not job.HasField("remove_from_cache")
                for job in act.jobs
            )
        )

    def get_serialization_context(self, command_info: Any) -> Any:
        return self.inner.get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> Any:
        return self.inner.get_external_store_context(command_info)

    def get_info(self) -> Info:
        return self.inner.get_info()

    def get_thread_id(self) -> int | None:
        return self.inner.get_thread_id()
