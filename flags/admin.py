import json

from django import forms
from django.contrib import admin

from flags import runtime
from flags.models import FlagChange, RuntimeFlags
from flags.schema import FlagsInvalid


class RuntimeFlagsForm(forms.ModelForm):
    class Meta:
        model = RuntimeFlags
        fields = ("value",)

    def clean_value(self):
        value = self.cleaned_data["value"]
        try:
            runtime.check_stored(value)
        except FlagsInvalid as exc:
            raise forms.ValidationError([f"{path}: {message}" for path, message in exc.errors]) from None
        return value


@admin.register(RuntimeFlags)
class RuntimeFlagsAdmin(admin.ModelAdmin):
    form = RuntimeFlagsForm
    list_display = ("__str__", "updated_at")
    readonly_fields = ("effective",)

    @admin.display(description="In effect (defaults with the value above merged over them)")
    def effective(self, obj) -> str:
        return json.dumps(runtime.get_flags(), indent=1, sort_keys=True)

    def save_model(self, request, obj, form, change):
        # Through set_flags: the same checks, the audit row, and every process sees it within seconds.
        runtime.set_flags(obj.value, by=request.user, source="admin", replace=True)


@admin.register(FlagChange)
class FlagChangeAdmin(admin.ModelAdmin):
    list_display = ("changed_at", "changed_by", "source", "summary")
    list_filter = ("source",)
    readonly_fields = ("changed_at", "changed_by", "source", "before", "after")

    @admin.display(description="Change")
    def summary(self, change: FlagChange) -> str:
        return "; ".join(_diff(change.before, change.after)) or "no change"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _diff(before, after, path="") -> list[str]:
    """Which flags a change touched, as ``path: old → new``."""
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    out = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) or isinstance(new, dict):
            out += _diff(old, new, f"{path}{key}.")
        elif old != new:
            out.append(f"{path}{key}: {json.dumps(old)} → {json.dumps(new)}")
    return out
