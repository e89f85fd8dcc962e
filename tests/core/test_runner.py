"""The worker's runner refuses a workflow task whose events arrive without a task start of
their own (seen as a legacy query on a restarted worker), and passes every other one on."""

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.bridge.proto.workflow_activation import (
    FireTimer,
    QueryWorkflow,
    WorkflowActivation,
    WorkflowActivationJob,
)
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion

from core.runner import EARLY_TASK, TaskOrderInstance


class RecordingInstance:
    """Stands in for the SDK's workflow instance: records what it was asked to run."""

    def __init__(self) -> None:
        self.activated: list[WorkflowActivation] = []

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        self.activated.append(act)
        completion = WorkflowActivationCompletion(run_id=act.run_id)
        completion.successful.SetInParent()
        return completion


def activation(
    seconds: int, length: int, *, replaying: bool = False, query: bool = False
) -> WorkflowActivation:
    job = (
        WorkflowActivationJob(query_workflow=QueryWorkflow(query_id="q", query_type="details"))
        if query
        else WorkflowActivationJob(fire_timer=FireTimer(seq=4))
    )
    return WorkflowActivation(
        run_id="run",
        timestamp=Timestamp(seconds=seconds),
        history_length=length,
        is_replaying=replaying,
        jobs=[job],
    )


def guarded() -> tuple[TaskOrderInstance, RecordingInstance]:
    inner = RecordingInstance()
    return TaskOrderInstance(inner), inner  # type: ignore[arg-type]


def test_events_without_a_task_start_of_their_own_are_refused() -> None:
    instance, inner = guarded()
    instance.activate(activation(100, 10, replaying=True))
    instance.activate(activation(200, 29, replaying=True))

    refused = instance.activate(activation(200, 43))  # history grew, the time did not

    assert refused.HasField("failed")
    assert refused.failed.failure.message == EARLY_TASK
    assert len(inner.activated) == 2


def test_tasks_with_their_own_start_time_run() -> None:
    instance, inner = guarded()
    instance.activate(activation(100, 10, replaying=True))
    for act in (
        activation(200, 29),  # a later task
        activation(200, 29),  # a second activation of the same task
        activation(200, 35, query=True),  # a query changes nothing
        activation(300, 48),
    ):
        assert instance.activate(act).HasField("successful")
    assert len(inner.activated) == 5


def test_a_replay_is_never_refused() -> None:
    instance, inner = guarded()
    instance.activate(activation(100, 10, replaying=True))
    assert instance.activate(activation(100, 20, replaying=True)).HasField("successful")
    assert len(inner.activated) == 2
