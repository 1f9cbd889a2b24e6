from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from payroll.models import Employee, PayrollRun, Payslip
from payroll.periods import format_period, last_ended_period, parse_period
from payroll.services import PeriodNotEnded, payroll_run_open
from payroll.tasks import run_payroll_for_period


@admin.register(Employee)
class EmployeeAdmin(admin.ModelAdmin):
    list_display = ["user", "monthly_salary", "currency", "active", "created_at"]
    list_filter = ["active", "currency"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]


class RunPayrollForm(forms.Form):
    period = forms.CharField(
        max_length=7, help_text="The month to pay, YYYY-MM. A month is paid once: a paid month is left as it is."
    )

    def clean_period(self) -> str:
        try:
            period = parse_period(self.cleaned_data["period"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        if period > last_ended_period():
            raise forms.ValidationError(
                f"{format_period(period)} has not ended yet; the latest month that has is {format_period(last_ended_period())}"
            )
        return format_period(period)


@admin.register(PayrollRun)
class PayrollRunAdmin(admin.ModelAdmin):
    change_list_template = "admin/payroll/payrollrun/change_list.html"
    list_display = ["__str__", "status", "progress", "trigger", "attempts", "started_at", "finished_at", "duration"]
    list_filter = ["status", "trigger"]
    readonly_fields = [f.name for f in PayrollRun._meta.fields]
    actions = ["resume"]

    @admin.display(description="payslips")
    def progress(self, run: PayrollRun) -> str:
        return f"{run.payslips_written} / {run.employees_total}" if run.employees_total else str(run.payslips_written)

    @admin.display(description="took")
    def duration(self, run: PayrollRun) -> str:
        if not run.started_at:
            return "-"
        seconds = ((run.finished_at or timezone.now()) - run.started_at).total_seconds()
        return f"{seconds:.1f} s" + ("" if run.finished_at else " so far")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.run_view)
        return [path("run/", view, name="payroll_payrollrun_run"), *super().get_urls()]

    def run_view(self, request: HttpRequest) -> HttpResponse:
        """Run the payroll of a chosen month now, on the payroll worker, like the schedule does."""
        if not self.has_view_permission(request) or not request.user.has_perm("payroll.change_payrollrun"):
            raise PermissionDenied("not allowed to run the payroll")
        form = RunPayrollForm(request.POST or None, initial={"period": format_period(last_ended_period())})
        if request.method == "POST" and form.is_valid():
            self._enqueue(request, form.cleaned_data["period"])
            return HttpResponseRedirect(reverse("admin:payroll_payrollrun_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form, "title": "Run payroll now"}
        return TemplateResponse(request, "admin/payroll/payrollrun/run.html", context)

    def _enqueue(self, request: HttpRequest, period: str) -> None:
        try:
            run = payroll_run_open(period=parse_period(period), trigger=PayrollRun.Trigger.ADMIN)
        except PeriodNotEnded as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if run.status == PayrollRun.Status.COMPLETED:
            self.message_user(
                request, f"{period} was paid already ({run.payslips_written} payslips); nobody is paid twice.", messages.WARNING
            )
            return
        run_payroll_for_period.delay(period, PayrollRun.Trigger.ADMIN)
        self.message_user(request, f"Payroll for {period} queued on the payroll worker; its progress shows below.")

    @admin.action(description="Resume the selected runs (pays only who is not paid yet)")
    def resume(self, request: HttpRequest, queryset: QuerySet[PayrollRun]) -> None:
        for run in queryset:
            self._enqueue(request, format_period(run.period))


@admin.register(Payslip)
class PayslipAdmin(admin.ModelAdmin):
    list_display = ["employee", "period", "amount", "currency", "run", "created_at"]
    list_filter = ["period", "currency"]
    search_fields = ["employee__user__username", "employee__user__email"]
    list_select_related = ["employee__user", "run"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
