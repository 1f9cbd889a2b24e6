import json

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.services import user_create


@csrf_exempt
@require_POST
def user_register(request: HttpRequest) -> JsonResponse:
    """POST /api/users/ {"username", "email", "password"} -> 201 {"id", "username", "email"}."""
    try:
        body = json.loads(request.body)
        username, email = str(body["username"]), str(body["email"])
        validate_email(email)
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "expected JSON with username and email"}, status=400)
    except ValidationError:
        return JsonResponse({"error": "email is not valid"}, status=400)
    try:
        user = user_create(username=username, email=email, password=body.get("password"))
    except IntegrityError:
        return JsonResponse({"error": f"username {username!r} is taken"}, status=409)
    return JsonResponse({"id": user.pk, "username": user.username, "email": user.email}, status=201)
