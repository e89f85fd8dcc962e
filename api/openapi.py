"""What the OpenAPI document says beyond what FastAPI derives from the routes.

- Links: which answer carries the id that other operations take in their path. A client
  generator, or schemathesis's stateful phase, follows them from a booking to the order's
  actions, from a registration to the technician's routes and from a filed complaint to its
  actions, instead of guessing ids.
- Every error answer is problem+json (api.errors), FastAPI's own 422 included.
"""

from typing import Any

from fastapi import FastAPI

from api.errors import PROBLEM_JSON

# (method, path) of an operation that makes something -> (its answer's status, the path
# parameter the made thing fills, where the answer holds its value)
MAKERS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("post", "/v1/orders"): ("201", "order_id", "$response.body#/order_id"),
    ("post", "/v1/orders/{order_id}/warranty-claims"): (
        "201",
        "order_id",
        "$response.body#/claim_order_id",
    ),
    ("post", "/v1/technicians"): ("201", "technician_id", "$response.body#/id"),
    ("post", "/v1/orders/{order_id}/complaints"): (
        "201",
        "complaint_id",
        "$response.body#/complaint_id",
    ),
}


def add_links(schema: dict[str, Any]) -> dict[str, Any]:
    """Link each maker's answer to every operation whose path takes what it made (and nothing
    else: an operation that also needs another id cannot be reached from this answer alone)."""
    paths: dict[str, dict[str, Any]] = schema["paths"]
    for (method, path), (status, parameter, value) in MAKERS.items():
        links = paths[path][method]["responses"][status].setdefault("links", {})
        for target_path, operations in paths.items():
            if target_path.count("{") != 1 or f"{{{parameter}}}" not in target_path:
                continue
            for operation in operations.values():
                links[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": {parameter: value},
                }
    return schema


def errors_as_problems(schema: dict[str, Any]) -> dict[str, Any]:
    for operations in schema["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {PROBLEM_JSON: {}}
    return schema


def install(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = errors_as_problems(add_links(build()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
