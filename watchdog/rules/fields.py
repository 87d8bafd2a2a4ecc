"""The field types every part of a rules file shares: durations with units, shares,
names, severities and thresholds, and the frozen base ``Model``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from watchdog.units import MAX_RULES_DURATION, Unit, parse_duration, parse_share, parse_threshold

# Validation context of a file a person wrote: durations need a unit and stay below
# MAX_RULES_DURATION. Models built in code (already in seconds) are not held to it.
FILE_CONTEXT = {"file": True}


def _duration(value: object, info: ValidationInfo) -> float:
    from_file = bool(info.context and info.context.get("file"))
    seconds = parse_duration(value, need_unit=from_file)
    if from_file and seconds > MAX_RULES_DURATION:
        raise ValueError(
            f"{value} is longer than the {MAX_RULES_DURATION / 86400:g}d a rules file allows"
        )
    return seconds


def _positive_duration(value: object, info: ValidationInfo) -> float:
    seconds = _duration(value, info)
    if not seconds > 0:
        raise ValueError(f"must be longer than 0s, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]
# A timeout or a sampling interval: 0 would spin or never wait.
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
Share = Annotated[float, BeforeValidator(parse_share)]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")


def _threshold(value: object) -> Threshold:
    if isinstance(value, Threshold):
        return value
    number, unit = parse_threshold(value)
    return Threshold(value=number, unit=unit, text=str(value))


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Threshold(Model):
    value: float
    unit: Unit
    text: str


ThresholdField = Annotated[Threshold, BeforeValidator(_threshold)]


def _confidence(value: object) -> float:
    share = parse_share(value)
    if not 0.5 <= share < 1.0:
        raise ValueError(f"expected a confidence from 50% to below 100% (like 99%), got {value!r}")
    return share


Confidence = Annotated[float, BeforeValidator(_confidence)]


class Effect(Model):
    """The smallest effect a regression rule acts on: a ratio of error ratios (``2x``)
    or, ``absolute``, an increase of the error ratio itself (``+1.5%``: from 0.5 % to
    2 % is +1.5 %)."""

    value: float
    absolute: bool = False
    text: str

    def __str__(self) -> str:
        return self.text


def _effect(value: object) -> Effect:
    """``"2x"`` or ``2`` -> a ratio above 1; ``"+1.5%"`` -> an increase of 0.015."""
    if isinstance(value, Effect):
        return value
    text = str(value).strip()
    if text.startswith("+"):
        number = text[1:].strip()
        if not number.endswith("%"):
            raise ValueError(
                f"an absolute effect is an increase in percent, like +1.5%, got {value!r}"
            )
        try:
            points = float(number[:-1]) / 100.0
        except ValueError:
            raise ValueError(f"expected an absolute effect like +1.5%, got {value!r}") from None
        if not 0.0 < points < 1.0:
            raise ValueError(
                f"an absolute effect must lie above +0% and below +100%, got {value!r}"
            )
        return Effect(value=points, absolute=True, text=f"+{points * 100:g}%")
    number = text[:-1] if text.endswith("x") else text
    try:
        effect = float(number)
    except ValueError:
        raise ValueError(
            f"expected an effect like 2x (a ratio) or +1.5% (an absolute increase), got {value!r}"
        ) from None
    if not 1.0 < effect <= 1000.0:
        raise ValueError(f"an effect must be above 1x and at most 1000x, got {value!r}")
    return Effect(value=effect, text=f"{effect:g}x")


EffectField = Annotated[Effect, BeforeValidator(_effect)]


def _ratio_effect(value: object) -> float:
    """A canary's effect: a ratio only (its test compares the new version's share of the
    errors, where an absolute increase has no meaning)."""
    effect = _effect(value)
    if effect.absolute:
        raise ValueError(f"a canary's min_effect is a ratio like 3x, got {value!r}")
    return effect.value


RatioEffect = Annotated[float, BeforeValidator(_ratio_effect)]
