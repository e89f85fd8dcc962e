"""The workflow classes this code base runs: the worker registers them, and a replay (the
deployment gate, the audit route) checks histories against them."""

from workflows.complaint import ComplaintWorkflow
from workflows.erasure import PersonalDataErasureWorkflow
from workflows.repair_order import RepairOrderWorkflow

WORKFLOWS = [RepairOrderWorkflow, ComplaintWorkflow, PersonalDataErasureWorkflow]
