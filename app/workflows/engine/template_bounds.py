"""Size bounds for what a Jinja2 template may build: filters, string methods and operators that can allocate a
lot from a small input are checked *before* they run, and every result is checked after.

Jinja's ``SandboxedEnvironment`` guards attribute access, not time or memory: ``"a"|center(400000000)``,
``"%0400000000d" % 1``, ``"{:>400000000}".format(1)``, ``x|replace("", y)``, ``"".join(...)``,
``s * n``, ``n ** m`` and ``~`` in a macro that doubles its argument all allocate freely. Here each of them first
*estimates* the size of its result (cheaply: never by building it) and raises :class:`TemplateTooLarge` when the
estimate exceeds the render's ``max_value``. The estimates are upper bounds, not exact; what they miss, the
confined child's memory limit stops (``app.workflows.templates``). Loops are budgeted too (``range`` lengths and
loop iterations, each at most ``MAX_ITERATIONS`` per render).

Pure and dependency-free besides Jinja2: it runs in the API process (compile checks), in the worker (the fast
path of trivial templates) and in the sandbox's children (everything else).
"""

from __future__ import annotations

import contextvars
import functools
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

#: ``range()`` lengths and loop iterations (each, per render)
MAX_ITERATIONS = 1_000_000
#: largest integer (in bits) ``*`` and ``**`` may produce, and the largest exponent ``**`` accepts
MAX_INT_BITS = 100_000
MAX_EXPONENT = 1_000
#: sizes are estimated by walking containers; past this many items the walk stops and says "too large"
_WALK_ITEMS = 200_000

_formatter = string.Formatter()


class TemplateTooLarge(Exception):
    """The template's output, one of its values or its loops exceed their limits."""


class Budget:
    """What one render may still spend."""

    def __init__(self, max_value: int) -> None:
        self.max_value = max_value
        self.range_left = MAX_ITERATIONS
        self.loop_left = MAX_ITERATIONS


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget", default=None)
#: outside a render (a compile check, a direct call) the budget is this size
_DEFAULT_MAX_VALUE = 4_000_000


def start(max_value: int) -> contextvars.Token[Budget | None]:
    return _budget.set(Budget(max_value))


def finish(token: contextvars.Token[Budget | None]) -> None:
    _budget.reset(token)


def _current() -> Budget:
    budget = _budget.get()
    if budget is None:
        budget = Budget(_DEFAULT_MAX_VALUE)
        _budget.set(budget)
    return budget


def _refuse(what: str) -> None:
    raise TemplateTooLarge(f"{what} would be larger than {_current().max_value:,} characters or items")


def check(size: int, what: str) -> None:
    if size > _current().max_value:
        _refuse(what)


# -- estimating sizes --------------------------------------------------------------------------------------------


def approx_len(value: Any, limit: int | None = None, max_items: int = _WALK_ITEMS) -> int:
    """Roughly ``len(str(value))`` without building it; ``limit + 1`` once it is past ``limit`` (default: the
    budget) or has visited ``max_items`` items."""
    limit = _current().max_value if limit is None else limit
    total, seen = 0, 0
    stack = [value]
    while stack:
        item = stack.pop()
        seen += 1
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 30103 // 100000 + 2
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 64  # an object whose str() we do not know: Jinja's own (Undefined, cycler...) are short
        if total > limit or seen > max_items:
            return limit + 1
    return total


def _length(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return approx_len(value)


def _int_arg(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def percent_size(fmt: str, args: Any) -> int:
    """An upper bound of ``len(fmt % args)``: per conversion, its width/precision or the largest argument."""
    values = (
        list(args.values())
        if isinstance(args, Mapping)
        else list(args)
        if isinstance(args, tuple)
        else [args]
    )
    largest_arg = max((approx_len(v) for v in values), default=0)
    star = max((_int_arg(v) for v in values), default=0)
    conversions, widest = 0, 0
    position = fmt.find("%")
    while position >= 0:
        i = position + 1
        if i < len(fmt) and fmt[i] == "(":
            close = fmt.find(")", i)
            if close < 0:
                break  # Python refuses the format ("incomplete format key")
            i = close + 1
        while i < len(fmt) and fmt[i] in "#0- +":
            i += 1
        for _ in range(2):  # width, then .precision
            if i < len(fmt) and fmt[i] == "*":
                widest = max(widest, star)
                i += 1
            else:
                digits = i
                while i < len(fmt) and fmt[i].isdigit():
                    i += 1
                if i > digits:
                    widest = max(widest, int(fmt[digits:i]) if i - digits < 12 else 10**12)
            if i < len(fmt) and fmt[i] == ".":
                i += 1
            else:
                break
        conversions += 1
        position = fmt.find("%", i + 1)
    return len(fmt) + conversions * (largest_arg + widest)


_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d*))?")


def format_size(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """An upper bound of ``len(fmt.format(*args, **kwargs))``."""
    values = [*args, *kwargs.values()]
    largest_arg = max((approx_len(v) for v in values), default=0)
    star = max((_int_arg(v) for v in values), default=0)
    fields, widest = 0, 0
    try:
        parsed = list(_formatter.parse(fmt))
    except ValueError:
        return len(fmt)  # Python refuses the format string itself
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        fields += 1
        if spec and "{" in spec:
            widest = max(widest, star)
            continue
        match = _SPEC.match(spec or "")
        for digits in match.groups() if match else ():
            if digits:
                widest = max(widest, int(digits) if len(digits) < 12 else 10**12)
    return len(fmt) + fields * (largest_arg + widest)


# -- operators ---------------------------------------------------------------------------------------------------


def _short(number: int | float) -> str:
    text = (
        str(number)
        if not isinstance(number, int) or number.bit_length() < 64
        else f"a {number.bit_length()}-bit number"
    )
    return text


def _sequence(value: Any) -> bool:
    return isinstance(value, str | list | tuple)


def binop(operator: str, left: Any, right: Any) -> None:
    """Checks an intercepted ``+ * ** %`` before it runs."""
    if operator == "**":
        if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise TemplateTooLarge(f"exponent {right} is larger than {MAX_EXPONENT}")
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateTooLarge(f"{_short(left)} ** {_short(right)} is too large a number")
    elif operator == "*":
        for seq, count in ((left, right), (right, left)):
            if _sequence(seq) and isinstance(count, int) and len(seq) * count > _current().max_value:
                raise TemplateTooLarge(f"repeating a sequence beyond {_current().max_value:,} items")
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            raise TemplateTooLarge("the product is too large a number")
    elif operator == "+":
        if _sequence(left) and _sequence(right):
            check(len(left) + len(right), "the sum")
    elif operator == "%" and isinstance(left, str):
        check(percent_size(left, right), "the formatted string")


def concat(parts: Iterable[Any]) -> str:
    """``a ~ b ~ c``: the parts as text, joined, if the result fits."""
    texts = []
    total = 0
    for part in parts:
        check(total + approx_len(part), "the concatenation")
        text = str(part)
        total += len(text)
        check(total, "the concatenation")
        texts.append(text)
    return "".join(texts)


def loop(iterable: Any) -> Iterator[Any]:
    """A ``{% for %}`` loop's items, counted against the render's loop budget."""
    budget = _current()
    for item in iterable:
        budget.loop_left -= 1
        if budget.loop_left < 0:
            raise TemplateTooLarge(f"loops exceed {MAX_ITERATIONS:,} iterations in total")
        yield item


def bounded_range(*args: int) -> range:
    numbers = range(*args)
    budget = _current()
    budget.range_left -= len(numbers)
    if budget.range_left < 0:
        raise TemplateTooLarge(f"loops exceed {MAX_ITERATIONS:,} iterations in total")
    return numbers


def check_result(value: Any) -> Any:
    """After a filter or a call: refuse a value that is already too large (growth over several steps)."""
    if isinstance(value, str | list | tuple | dict | set):
        check(len(value), "a value")
    return value


# -- filters and methods -----------------------------------------------------------------------------------------


def _replace_size(value: Any, old: Any, new: Any, count: Any = None) -> int:
    text, old, new = str(value), str(old), str(new)
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * max(0, len(new) - len(old))


def _join_size(items: list[Any], separator: Any) -> int:
    return sum(approx_len(item) for item in items) + len(items) * len(str(separator))


def _center(value: Any, width: Any = 80, *rest: Any) -> None:
    check(max(_length(value), _int_arg(width)), "the padded string")


def _indent(value: Any, width: Any = 4, *rest: Any, **kwargs: Any) -> None:
    text = str(value)
    per_line = len(width) if isinstance(width, str) else _int_arg(width)
    check(len(text) + (text.count("\n") + 1) * per_line, "the indented string")


def _wordwrap(value: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *rest: Any,
              **kwargs: Any) -> None:  # fmt: skip
    text = str(value)
    wrap = kwargs.get("wrapstring", wrapstring)
    lines = len(text) // max(1, _int_arg(kwargs.get("width", width)) or 1) + text.count("\n") + 1
    check(len(text) + lines * len(str(wrap) if wrap is not None else "\n"), "the wrapped string")


def _replace(value: Any, old: Any = "", new: Any = "", count: Any = None, *rest: Any) -> None:
    check(_replace_size(value, old, new, count), "the replaced string")


def _format(value: Any, *args: Any, **kwargs: Any) -> None:
    check(percent_size(str(value), kwargs or args), "the formatted string")


def _batch(value: Any, linecount: Any = 1, *rest: Any, **kwargs: Any) -> None:
    check(_int_arg(kwargs.get("linecount", linecount)), "the batch")


def _slice(value: Any, slices: Any = 1, *rest: Any, **kwargs: Any) -> None:
    check(_int_arg(kwargs.get("slices", slices)), "the slices")


#: filters that can allocate more than they are given, and how to check them before they run
FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace,
    "format": _format,
    "batch": _batch,
    "slice": _slice,
}


def bound_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a Jinja filter) with its pre-check (if any) and the result check."""
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0
    pre = FILTER_CHECKS.get(name)

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name == "join" and len(args) > skip:
            # materialise once (a generator cannot be measured and then used), then measure
            items = list(args[skip])
            separator = kwargs.get("d", args[skip + 1] if len(args) > skip + 1 else "")
            check(_join_size(items, separator), "the joined string")
            args = (*args[:skip], items, *args[skip + 1 :])
        elif pre is not None and len(args) > skip:
            pre(*args[skip:], **kwargs)
        return check_result(function(*args, **kwargs))

    return bounded


def _str_method(name: str, text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if name in ("ljust", "rjust", "center", "zfill"):
        check(max(len(text), _int_arg(args[0] if args else kwargs.get("width", 0))), "the padded string")
    elif name == "expandtabs":
        size = _int_arg(args[0] if args else kwargs.get("tabsize", 8))
        check(len(text) + text.count("\t") * size, "the expanded string")
    elif name == "replace" and len(args) >= 2:
        check(_replace_size(text, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count")),
              "the replaced string")  # fmt: skip
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((approx_len(v) for v in args[0].values()), default=1)
        check(len(text) * max(1, longest), "the translated string")


def method_call(function: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Checks a call of a ``str`` or ``list`` method before it runs; returns the (possibly materialised) args."""
    owner = getattr(function, "__self__", None)
    name = getattr(function, "__name__", "")
    if isinstance(owner, str):
        if name == "join" and args:
            items = list(args[0])
            check(_join_size(items, owner), "the joined string")
            return (items, *args[1:])
        _str_method(name, owner, args, kwargs)
    elif isinstance(owner, list) and name == "extend" and args:
        items = list(args[0])
        check(len(owner) + len(items), "the list")
        return (items, *args[1:])
    return args
