"""Shared schema bases and fields."""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

GS = "\x1d"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


#: the databases' largest integer (PostgreSQL BIGINT, SQLite INTEGER)
INT64_MAX = 2**63 - 1
_INT64 = validate.Range(min=-INT64_MAX - 1, max=INT64_MAX)


class BaseSchema(Schema):
    """Unknown fields are an error: a typo must not be silently ignored.

    Update schemas set ``partial_by_default``: every field optional, only those sent change.
    """

    partial_by_default = False

    class Meta:
        unknown = RAISE
        ordered = True

    #: fields holding a scanned GS1 symbol's data, where the group separator is data
    scanned_gs1: frozenset[str] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partial", self.partial_by_default)
        super().__init__(*args, **kwargs)

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        # Every integer fits the databases' 64-bit integers, so a huge id or filter value is
        # a 422 naming the field instead of an overflow in the query.
        inner = getattr(field_obj, "inner", None)
        for field in (field_obj, inner):
            if isinstance(field, fields.Integer) and _INT64 not in field.validators:
                field.validators.append(_INT64)

    @pre_load(pass_collection=True)
    def _refuse_control_characters(self, data: Any, **_kwargs: Any) -> Any:
        # NUL and other control characters cannot be stored (PostgreSQL refuses NUL) and
        # have no place in a record: name the field instead of failing at the database.
        errors = {}
        for key, value in data.items() if isinstance(data, dict) else ():
            if key in self.scanned_gs1 and isinstance(value, str):
                value = value.replace(GS, "")  # the separator of GS1 fields, as scanned
            if isinstance(value, str) and _CONTROL.search(value):
                errors[key] = ["contains a control character (such as NUL)"]
        if errors:
            raise ValidationError(errors)
        return data


def describe(text: str, **more: Any) -> dict[str, Any]:
    return {"description": text, **more}


def enum_field(enum_cls: type[enum.Enum], text: str, **kwargs: Any) -> fields.Enum:
    return fields.Enum(enum_cls, by_value=True, metadata=describe(text), **kwargs)


class AwareDateTime(fields.AwareDateTime):
    """An ISO 8601 timestamp that must carry a timezone."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            utc = parsed.astimezone(dt.UTC)
        except OverflowError:
            raise ValidationError("is out of range") from None
        if utc.year < 1800:
            raise ValidationError("is before 1800: check the date") from None
        return utc


class DecimalNumber(fields.Decimal):
    """A decimal kept exact in the database and given to JSON readers as a number, as the
    OpenAPI document says (quantities have at most 12 significant digits: a float holds
    them exactly)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        number = super()._serialize(value, attr, obj, **kwargs)
        if number is None:
            return None
        return int(number) if number == number.to_integral_value() else float(number)


def decimal_field(text: str, *, places: int, maximum: int | None = None, **kwargs: Any) -> fields.Decimal:
    """A non-negative decimal. The range is checked by a plain function, because apispec
    would render a ``Range`` on a Decimal field as string bounds, which OpenAPI forbids."""

    def check(value: Any) -> None:
        if value is not None and value < 0:
            raise ValidationError("must not be negative")
        if value is not None and maximum is not None and value > maximum:
            raise ValidationError(f"must be at most {maximum}")

    meta = describe(text, minimum=0, **({"maximum": maximum} if maximum is not None else {}))
    return fields.Decimal(places=places, validate=check, metadata=meta, **kwargs)


def not_in_future(value: dt.datetime) -> None:
    if value > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
        raise ValidationError("must not be in the future")


def code_field(text: str, *, required: bool = True, max_len: int = 32) -> fields.String:
    return fields.String(
        required=required,
        validate=[
            validate.Length(min=1, max=max_len),
            validate.Regexp(
                r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                error="use letters, digits, '.', '_' and '-' only, starting with a letter or digit",
            ),
        ],
        metadata=describe(text),
    )


class ListArgsSchema(BaseSchema):
    """Keyset pagination arguments shared by every list endpoint."""

    limit = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=1000),
        metadata=describe("Page size (1–1000, default 100)"),
    )
    after = fields.Integer(
        load_default=None,
        validate=validate.Range(min=0),
        metadata=describe("Cursor: return rows after this id (from `X-Next-Cursor`)"),
    )


class JsonObject(fields.Field):
    """A JSON object, sent as one (JSON body) or as JSON text (query string, form)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            parsed = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            raise ValidationError("not valid JSON") from None
        if not isinstance(parsed, dict):
            raise ValidationError("a JSON object is expected")
        return parsed
