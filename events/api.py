"""The event catalogue over HTTP: the AsyncAPI 3.0 document at /api/events/asyncapi.json.

Open, like /api/openapi.json: it describes the contracts (types, versions, schemas, queues), not
data. The readable page is /events/catalogue/ (events/views.py).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from ninja import Router

from events import asyncapi

router = Router(tags=["events"])


@router.get("/asyncapi.json", auth=None, summary="The AsyncAPI 3.0 document of every event type, version and handler")
def asyncapi_document(request: HttpRequest) -> JsonResponse:
    return JsonResponse(asyncapi.document(), json_dumps_params={"indent": 2})
