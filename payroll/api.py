from datetime import datetime
from decimal import Decimal

from django.http import HttpRequest
from ninja import Router, Schema

from payroll.models import Payslip
from payroll.periods import format_period
from project.schemas import AUTH_ERRORS

router = Router(tags=["payroll"])


class PayslipOut(Schema):
    id: int
    period: str
    amount: Decimal
    currency: str
    createdAt: datetime


@router.get("/payslips/", response={200: list[PayslipOut], **AUTH_ERRORS}, include_in_schema=False)
@router.get("/payslips", response={200: list[PayslipOut], **AUTH_ERRORS}, summary="My payslips")
def payslip_list(request: HttpRequest) -> list[dict[str, object]]:
    """The caller's payslips, newest period first (empty for a user who is not an employee)."""
    payslips = Payslip.objects.filter(employee__user=request.auth).order_by("-period")[:120]
    return [
        {"id": p.pk, "period": format_period(p.period), "amount": p.amount, "currency": p.currency, "createdAt": p.created_at}
        for p in payslips
    ]
