from django.conf import settings
from django.db import models


class Employee(models.Model):
    """A user on the payroll: paid `monthly_salary` in `currency` once per period."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="employee")
    monthly_salary = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR", help_text="ISO 4217 code, e.g. EUR.")
    active = models.BooleanField(default=True, help_text="Only active employees are paid.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return str(self.user)


class PayrollRun(models.Model):
    """The payroll of one period (a month, stored as its first day): one row per period, ever."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        ADMIN = "admin"
        API = "api"

    period = models.DateField(unique=True, help_text="The month paid, as its first day.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.SCHEDULE)
    employees_total = models.PositiveIntegerField(default=0)
    payslips_written = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0, help_text="Executions that worked on this run (retries, resumes).")
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period"]

    def __str__(self) -> str:
        return f"payroll {self.period:%Y-%m}"


class Payslip(models.Model):
    """What one employee was paid for one period. (employee, period) is unique: nobody is paid twice."""

    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="payslips")
    run = models.ForeignKey(PayrollRun, on_delete=models.PROTECT, related_name="payslips")
    period = models.DateField()
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period", "employee"]
        constraints = [models.UniqueConstraint(fields=["employee", "period"], name="payslip_once_per_employee_and_period")]

    def __str__(self) -> str:
        return f"{self.employee} {self.period:%Y-%m}"
