"""The target spec (`optimize.toml`): what to build, test, measure and protect.

Validated by pydantic; durations are written like "90s", "15m", "1h" and fractions like "2%".
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator


class SpecError(Exception):
    """The target spec is missing or invalid; the message names the file and key."""


def _seconds(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)?\s*", str(value))
    if not m:
        raise ValueError(f"expected a duration like '90s', '15m' or '1h', got {value!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


def _fraction(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"\s*([0-9.]+)\s*%\s*", str(value))
    if not m:
        raise ValueError(f"expected a percentage like '2%', got {value!r}")
    return float(m.group(1)) / 100


Seconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]
Fraction = Annotated[float, BeforeValidator(_fraction), Field(ge=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(Strict):
    cmd: str = Field(description="Shell command, run in the worktree root.")
    timeout: Seconds = Field(900, description="Kill the whole process group after this long.")


class Metric(Strict):
    regex: str | None = Field(None, description="First group is the number; the last match in the output wins.")
    json_path: str | None = Field(None, description="Dotted path into a JSON object printed on the last line.")
    unit: str = Field("s", description="Shown to people, e.g. 'MT/s' or 'tok/s'.")
    better: Literal["higher", "lower"] = "higher"


class Holdout(Strict):
    """The benchmark on inputs the model never saw, for a benchmark whose own input is fixed: each
    verification runs it on fresh seeds, and its `same_output` lines must equal the unmodified code's
    on the same seeds, so an answer keyed on the fixed input (or computed for it during the build) fails."""

    cmd: str | None = Field(None, description="The hold-out command, with {seed}: e.g. 'python bench.py --seed {seed}'.")
    args: str | None = Field(None, description="Or: arguments with {seed} appended to the bench command, e.g. '--seed {seed}'.")
    runs: int = Field(2, ge=1, le=20, description="Fresh inputs per verification.")

    @model_validator(mode="after")
    def _one_seeded_command(self) -> Holdout:
        if (self.cmd is None) == (self.args is None):
            raise ValueError("give either cmd or args")
        if "{seed}" not in (self.cmd or self.args or ""):
            raise ValueError("must contain {seed}: the hold-out input is chosen by the harness")
        return self

    def command(self, bench_cmd: str) -> str:
        return self.cmd or f"{bench_cmd} {self.args}"


class Bench(Step):
    metric: Metric | None = Field(None, description="None: wall time of the command, lower is better.")
    same_output: list[str] = Field(default_factory=list, description="Regexes of output lines that must equal the baseline's.")
    holdout: Holdout | None = Field(None, description="For a fixed-input benchmark: the same benchmark on unseen inputs.")
    reference_cmd: str | None = Field(None, description="Another implementation, measured side by side with the best at the end.")
    timeout: Seconds = 600

    @model_validator(mode="after")
    def _holdout_compares_something(self) -> Bench:
        if self.holdout is not None and not self.same_output:
            raise ValueError("holdout needs same_output: the lines compared with the unmodified code's")
        return self

    @property
    def better(self) -> Literal["higher", "lower"]:
        return self.metric.better if self.metric else "lower"

    @property
    def unit(self) -> str:
        return self.metric.unit if self.metric else "s"


class GuardMetric(Strict):
    name: Literal["peak_rss", "cpu_time"]
    max_regression: Fraction = 0.10


class Guard(Strict):
    protected: list[str] = Field(default_factory=lambda: ["optimize.toml"], description="Globs the model may not change.")
    metrics: list[GuardMetric] = Field(default_factory=list)
    max_plausible_speedup: float = Field(10.0, description="Larger wins from small diffs are flagged as suspicious.")
    editable_config: list[str] = Field(default_factory=list, description=(
        "Runner and build configuration the model may change (frozen by default), e.g. ['Cargo.toml'] to let "
        "it tune release profiles. The frozen files are derived from the test and build commands."))


class Profile(Strict):
    kind: Literal["py-spy", "jfr", "perf", "callgrind", "none"] = "none"
    cmd: str | None = Field(None, description="Command to profile; defaults to the bench command.")
    timeout: Seconds = 600


class Decide(Strict):
    min_effect: Fraction = Field(0.02, description="Smallest win worth keeping: `better` needs the whole interval above it.")
    alpha: float = Field(0.01, gt=0, lt=0.5, description="Family-wise error rate, split across all looks (0.01: 99% intervals).")
    looks: list[Annotated[int, Field(ge=2)]] = Field(default_factory=lambda: [5, 10, 20, 40], min_length=1,
                                                     description="Pair counts at which every candidate is examined (the screen).")
    extra_looks: list[Annotated[int, Field(ge=2)]] | None = Field(
        None, description="Further looks for a promising candidate whose interval straddles min_effect "
                          "(default: 2x and 3x the last look, at most 120).")
    calibration_pairs: int = Field(10, ge=3, description="A/A pairs at baseline: bias check, pair budget, noise warning.")
    noise_multiple: float | None = Field(None, ge=0, description="Deprecated and ignored: the noise is in the interval, "
                                                                  "no longer added to the threshold.")
    confirm_pairs: int = Field(20, ge=3, description="Pairs for the final best-vs-baseline confirmation.")
    pin_cpu: int | None = Field(None, description="Pin every sample to this core with taskset.")


class TargetSpec(Strict):
    name: str = "target"
    description: str = ""
    build: Step | None = None
    test: Step
    bench: Bench
    guard: Guard = Guard()
    profile: Profile = Profile()
    decide: Decide = Decide()


def load_spec(path: Path) -> TargetSpec:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise SpecError(f"{path}: no such file") from e
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from e
    return parse_spec(data, str(path))


def parse_spec(data: dict, where: str) -> TargetSpec:
    try:
        return TargetSpec.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"[{'.'.join(str(p) for p in err['loc'])}] {err['msg']}" for err in e.errors()
        )
        raise SpecError(f"{where}: {problems}") from e


def dump_spec(spec: TargetSpec) -> str:
    """TOML text of a spec (for `optimize init`); written by hand since tomllib only reads."""
    lines = [f"name = {_toml(spec.name)}", ""]
    for section in ("build", "test", "bench", "guard", "profile", "decide"):
        value = getattr(spec, section)
        if value is None:
            continue
        lines.append(f"[{section}]")
        for key, item in value.model_dump(exclude_none=True).items():
            lines.append(f"{key} = {_toml(item)}")
        lines.append("")
    return "\n".join(lines)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _quote(s: str) -> str:
    if "'" not in s and "\n" not in s:
        return f"'{s}'"  # a literal string keeps regex backslashes readable
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
