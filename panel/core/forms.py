"""Form pieces the apps' forms share: size and rate fields with units, and forms that know their user."""

from __future__ import annotations

from typing import Any

from django import forms

from panel.core import formats


class UnitField(forms.CharField):
    """An integer typed with a unit ("2 GiB", "100 Mbit/s"); empty is None when not required."""

    units: dict[str, int] = formats.BYTE_UNITS
    example = "512 MiB, 2 GiB or 1.5 GB"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", f"e.g. {self.example}")
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("inputmode", "text")
        self.widget.attrs.setdefault("spellcheck", "false")

    def prepare_value(self, value: Any) -> Any:
        return self.as_text(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def as_text(self, value: int) -> str:
        return formats.bytes_input(value)

    def to_python(self, value: Any) -> int | None:
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return formats.parse_units(text, self.units)
        except ValueError as exc:
            raise forms.ValidationError(f"Not a size: use a number with a unit, e.g. {self.example}.",
                                        code="invalid") from exc


class ByteSizeField(UnitField):
    pass


class RateField(UnitField):
    units = formats.RATE_UNITS
    example = "100 Mbit/s or 1 Gbit/s"

    def as_text(self, value: int) -> str:
        return formats.rate_input(value)


class UserFormMixin:
    """Forms built for one user (`user=` keyword): fields and choices depend on who fills them in."""

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)
