from datetime import datetime
from decimal import Decimal

from pydantic import Field

from events import EventSchema, event_type


class SalaryCreditedV1(EventSchema):
    payslipId: str
    employeeId: str
    userId: str
    username: str
    email: str
    period: str = Field(pattern=r"^\d{4}-\d{2}$", description="The month paid, YYYY-MM.")
    amount: Decimal
    currency: str
    creditedAt: datetime


SalaryCredited = event_type("payroll", "SalaryCredited", versions={"1.0": SalaryCreditedV1})
