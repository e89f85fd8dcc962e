"""The action table is the one place an action's roles and stages are written: every update
of the order workflow has a row, and every row is an update the API routes to."""

from temporalio.workflow import _Definition

from api.routes.actions import ROUTES
from models.actions import ACTIONS, Action
from models.order import FINAL_STAGES, Role, Stage
from workflows.repair_order import RepairOrderWorkflow

# Claims and complaints answer with a new id; corrections are a PATCH that seals what it sends.
ROUTED_ELSEWHERE = {Action.CLAIM_WARRANTY, Action.FILE_COMPLAINT, Action.CORRECT_DETAILS}


def test_every_action_is_an_update_of_the_order_workflow_and_every_update_an_action() -> None:
    updates = set(_Definition.must_from_class(RepairOrderWorkflow).updates)
    assert updates == {action.value for action in Action}


def test_every_action_has_a_rule_and_one_route() -> None:
    assert set(ACTIONS) == set(Action)
    routed = [route.action for route in ROUTES]
    assert len(routed) == len(set(routed))
    assert set(routed) | ROUTED_ELSEWHERE == set(Action)


def test_no_action_is_taken_on_a_finished_order_nor_by_an_auditor_or_admin() -> None:
    for action, rule in ACTIONS.items():
        assert not rule.stages & FINAL_STAGES, action
        assert not rule.roles & {Role.AUDITOR, Role.ADMIN}, action


def test_the_safety_stop_is_cleared_by_a_supervisor_only() -> None:
    rule = ACTIONS[Action.CLEAR_HAZARD]
    assert rule.roles == {Role.SUPERVISOR}
    assert rule.stages == {Stage.SAFETY_STOP}
