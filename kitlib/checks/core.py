"""What every exercise check shares: calling the learner's code safely, reporting expected / received / hint,
cases kept unseen, and the fuller hints that `hint(name)` prints."""

from __future__ import annotations

import copy
import functools
import inspect
import re
import textwrap
import zlib
from typing import Any, Callable, TypeVar

import numpy as np


class CheckFailed(AssertionError):
    """An exercise check did not pass; the message says what was expected and how to fix it."""


def expect(ok: bool, what: str, expected: Any, received: Any, hint: str) -> None:
    """Raise CheckFailed with expected, received and a hint unless `ok`."""
    if not ok:
        raise CheckFailed(f"{what}\n  expected: {expected}\n  received: {received}\n  hint: {hint}")


# The gap between 1 and the next number a float type can hold (numpy has no bfloat16: 8 bits of mantissa).
_EPSILON = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}


def tolerance(dtype: Any = None, float32: float = 1e-5, ulps: float = 1) -> float:
    """The absolute tolerance for comparing values of order 1 computed in `dtype` with the float32 answer.

    float32 keeps `float32`; float16 and bfloat16 (mixed precision) allow `ulps` steps of their own precision
    near 1, since they round every result that finely. `dtype` defaults to the global policy's compute dtype.
    """
    if dtype is None:
        import keras

        dtype = keras.mixed_precision.global_policy().compute_dtype
    name = getattr(dtype, "name", dtype)
    return max(float32, ulps * _EPSILON[name]) if name in _EPSILON else float32


Check = TypeVar("Check", bound=Callable[..., None])
_FULL_HINTS: dict[str, str] = {}  # check name -> the fuller hint, close to the answer
_ALIASES: dict[str, str] = {}  # the lesson's function name -> its check's name


def exercise(full_hint: str, *aliases: str) -> Callable[[Check], Check]:
    """Register a check's fuller hint (also under `aliases`); each failure message of the check then says so."""
    def register(check: Check) -> Check:
        """Wrap `check` so that its failures mention `hint(name)`."""
        name = check.__name__
        _FULL_HINTS[name] = full_hint
        _ALIASES.update(dict.fromkeys(aliases, name))

        @functools.wraps(check)
        def run(*args: Any, **kwargs: Any) -> None:
            """Run the check; a failure keeps its traceback and gains the line about the fuller hint."""
            try:
                return check(*args, **kwargs)
            except CheckFailed as failure:
                failure.args = (f"{failure.args[0]}\n  more help: kitlib.checks.hint({name!r}) prints a fuller "
                                "hint, close to the answer: try the hint above and the lesson's section first.",)
                raise

        return run  # type: ignore[return-value]

    return register


def hint(name: str) -> None:
    """Print the fuller hint of an exercise, named by its check (e.g. "pick_model") or by the lesson's function."""
    key = _ALIASES.get(name, name)
    if key not in _FULL_HINTS:
        print(f"No exercise is named {name!r}. Names: {', '.join(sorted(_FULL_HINTS))}.")
        return
    print(f"Fuller hint for {key}:\n" + textwrap.indent(textwrap.dedent(_FULL_HINTS[key]).strip(), "  "))


def unseen_rng(name: str) -> np.random.Generator:
    """The generator of a check's unseen cases, seeded by the check's name so that every run grades alike."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def expect_unseen(ok: bool, what: str, hint: str) -> None:
    """Raise CheckFailed for a case whose inputs and answer stay hidden, naming only the property that was wrong."""
    if not ok:
        raise CheckFailed(f"A case not shown failed: {what}\n  The cases shown above pass, so the code may fit "
                          "them alone: its inputs stay hidden so that only an answer that works for any input "
                          f"passes. Look for a size, count or value your code assumes.\n  hint: {hint}")


def passed(message: str) -> None:
    """Tell the learner the check passed."""
    print(f"Check passed: {message}")


def _short(value: Any, limit: int = 120) -> str:
    """A one-line repr of a check input, cut to `limit` characters."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function; an unwritten stub or an exception becomes a message naming the inputs."""
    return _invoke(fn, args, kwargs, shown=True)


def _invoke(fn: Callable, args: tuple, kwargs: dict, shown: bool) -> Any:
    """`call`, naming the inputs in the message about an exception only when the case is `shown`."""
    name = getattr(fn, "__name__", "your function")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(
            f"`{name}` is not written yet: replace `raise NotImplementedError()` with your code, "
            "run that cell, then run this check again."
        ) from None
    except CheckFailed:
        raise
    except Exception as exc:  # the learner's bug: keep its traceback (chained) and say on which input
        inputs = ", ".join([_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()])
        where = f"called with: {name}({inputs})" if shown else "on a case not shown (its inputs stay hidden)"
        raise CheckFailed(f"`{name}` raised {type(exc).__name__}: {exc}\n  {where}\n"
                          "  hint: the traceback above shows the line of your code that failed.") from exc


def error_summary(exc: BaseException) -> str:
    """The root error of `exc` in one or two lines, with the learner's line when TensorFlow's tracing shows it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1][:300] if lines else ""
    if not re.match(r"^[\w.]+(Error|Exception|Warning)\b", last):
        last = f"{type(exc).__name__}: {last}"
    frames = [i for i, line in enumerate(lines) if line.startswith("File ") and "kitlib" not in line]
    if frames and frames[-1] + 1 < len(lines) - 1:
        return f"{last}\n  at: {lines[frames[-1]]}: {lines[frames[-1] + 1]}"
    return last


def _same(a: Any, b: Any) -> bool:
    """Whether two check inputs are equal, NaN equal to NaN, arrays element-wise."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def call_on_copies(fn: Callable, *args: Any, shown: bool = True) -> Any:
    """Call the learner's function on copies of `args`; fail, naming the argument, if it changed one in place.

    With `shown=False` the case is an unseen one: no message prints its inputs.
    """
    copies = copy.deepcopy(args)
    got = _invoke(fn, copies, {}, shown)
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    for position, (before, after) in enumerate(zip(args, copies)):
        name = names[position] if position < len(names) else f"argument {position + 1}"
        expect(_same(before, after), f"`{getattr(fn, '__name__', 'your function')}` changed its input `{name}` in "
               "place: the caller's data is now different, and any later use of it (and the expected answer "
               "computed from it) goes wrong.", _short(before) if shown else "the input unchanged",
               _short(after) if shown else "a changed input",
               "Leave inputs as they are: build new arrays/lists (np.where, .copy(), sorted(...)) instead of "
               "assigning into, sorting or normalising the argument itself.")
    return got


def sublayers(layer: Any) -> list:
    """`layer` and every layer inside it (Sequential, functional models), depth first, through the public `layers`."""
    inner = [] if layer is None else getattr(layer, "layers", [])
    return [layer] + [sub for child in inner for sub in sublayers(child)]
