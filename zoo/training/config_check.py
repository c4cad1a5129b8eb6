"""One validation pass over the composed training config, run before anything heavy is built.

:func:`validate_config` reads the keys of the composed config that the training driver, the data
module, the model factory, the optimizer, the scheduler and Lightning's ``Trainer`` rely on (see
the ``_check_*`` functions below), checks their types and ranges, and raises one
:class:`ConfigError` that lists every problem at once, one line per key::

    invalid config (2 problems):
      trainer.max_epochs='abc': an integer >= 1 is needed; e.g. trainer.max_epochs=30
      data.batch_size=1.5: an integer >= 1 is needed (got a float); e.g. data.batch_size=2
    These keys come from the YAML files under configs/ and the command-line overrides ...

Each line names the full dotted key, the bad value, what is allowed and a corrected example in
override syntax. Types are strict: a bool is not an integer, ``1.5`` is not an integer, the string
``"no"`` is not a bool and a number written in quotes is a string.

Only the checked keys are read, one at a time: the config holds interpolations such as
``${hydra:runtime.output_dir}`` that resolve only inside a Hydra run, so the whole config is never
resolved. A checked key whose interpolation cannot be resolved is itself reported.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

__all__ = ["ConfigError", "validate_config"]

log = logging.getLogger(__name__)

_ABSENT = object()
"""Marks a key that is not in the config at all."""

_SEED_MAX = 2**32 - 1
_FOOTER = ("These keys come from the YAML files under configs/ (train.yaml and its groups) and the "
           "command-line overrides; fix them there or override them, e.g. python train.py key=value.")


class ConfigError(ValueError):
    """A config value of the wrong type or out of range; the message names every bad key.

    Attributes:
        problems: one line per bad key: the dotted key, the bad value, what is allowed and a
            corrected example in override syntax.
    """

    problems: list[str]

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        lines = [f"invalid config ({n} problem{'' if n == 1 else 's'}):"]
        lines += [f"  {p}" for p in self.problems]
        lines.append(_FOOTER)
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Kinds of value: a predicate, a description of what it accepts, and the Python types it takes.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """What a key accepts.

    Attributes:
        allowed: the accepted values in words, e.g. ``"an integer >= 1"``.
        accept: returns whether a (non-null) value is accepted.
        types: the Python type names the kind can accept at all; a value of another type gets a
            ``(got a float)``-style hint.
    """

    allowed: str
    accept: Callable[[Any], bool]
    types: frozenset[str]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt_bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _range_words(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_fmt_bound(lo)}, {_fmt_bound(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt_bound(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {_fmt_bound(hi)}"
    return ""


def _in_range(v: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    if lo is not None and (v <= lo if lo_open else v < lo):
        return False
    if hi is not None and (v >= hi if hi_open else v > hi):
        return False
    return True


def _int(lo: int | None = None, hi: int | None = None) -> _Kind:
    """An integer (not a bool) in ``[lo, hi]``."""
    words = _range_words(lo, hi, False, False)
    return _Kind(f"an integer {words}".rstrip(), lambda v: _is_int(v) and _in_range(v, lo, hi, False, False),
                 frozenset({"int"}))


def _number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
            hi_open: bool = False) -> _Kind:
    """A finite int or float (not a bool) in the given range."""
    words = _range_words(lo, hi, lo_open, hi_open)
    return _Kind(f"a number {words}".rstrip(),
                 lambda v: _is_number(v) and math.isfinite(v) and _in_range(v, lo, hi, lo_open, hi_open),
                 frozenset({"int", "float"}))


def _float(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> _Kind:
    """A float (an int is read as a count instead) in the given range."""
    words = _range_words(lo, hi, lo_open, hi_open)
    return _Kind(f"a float {words}",
                 lambda v: isinstance(v, float) and math.isfinite(v) and _in_range(v, lo, hi, lo_open, hi_open),
                 frozenset({"float"}))


def _bool(*extra: str) -> _Kind:
    """``true`` or ``false`` (a real bool), or one of the ``extra`` strings."""
    words = "true or false" if not extra else "true, false or " + " or ".join(repr(e) for e in extra)
    return _Kind(words, lambda v: isinstance(v, bool) or (isinstance(v, str) and v in extra),
                 frozenset({"bool", "str"} if extra else {"bool"}))


def _string(*, nonempty: bool = True) -> _Kind:
    """A string, non-empty unless ``nonempty`` is false."""
    return _Kind("a non-empty string" if nonempty else "a string",
                 lambda v: isinstance(v, str) and (bool(v.strip()) or not nonempty), frozenset({"str"}))


def _choice(*options: Any) -> _Kind:
    """One of ``options`` (compared with their type: the int 32 and the string '32' differ)."""
    words = repr(options[0]) if len(options) == 1 else "one of " + ", ".join(repr(o) for o in options)
    keys = {(type(o), o) for o in options}

    def accept(v: Any) -> bool:
        try:
            return (type(v), v) in keys
        except TypeError:  # an unhashable list or mapping
            return False

    return _Kind(words, accept, frozenset(type(o).__name__ for o in options))


def _mapping() -> _Kind:
    return _Kind("a mapping", lambda v: isinstance(v, dict), frozenset({"dict"}))


def _any_of(*kinds: _Kind) -> _Kind:
    """Accepts what any of ``kinds`` accepts."""
    words = [k.allowed for k in kinds]
    allowed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    return _Kind(allowed, lambda v: any(k.accept(v) for k in kinds),
                 frozenset().union(*(k.types for k in kinds)))


def _int_list(lo: int | None = None, *, increasing: bool = False, nonempty: bool = True) -> _Kind:
    """A list of integers, each ``>= lo``, optionally strictly increasing."""
    words = "a " + ("non-empty " if nonempty else "") + "list of integers"
    if lo is not None:
        words += f" >= {lo}"
    if increasing:
        words += ", strictly increasing"

    def accept(v: Any) -> bool:
        if not isinstance(v, list) or (nonempty and not v):
            return False
        if not all(_is_int(x) and (lo is None or x >= lo) for x in v):
            return False
        return not increasing or all(a < b for a, b in zip(v, v[1:]))

    return _Kind(words, accept, frozenset({"list"}))


def _string_list() -> _Kind:
    """A list of non-empty strings (possibly empty)."""
    return _Kind("a list of non-empty strings",
                 lambda v: isinstance(v, list) and all(isinstance(x, str) and x.strip() for x in v),
                 frozenset({"list"}))


def _number_pair(lo: float, hi: float, *, hi_open: bool) -> _Kind:
    """A list of two numbers, each in ``[lo, hi)`` (or ``[lo, hi]``)."""
    number = _number(lo, hi, hi_open=hi_open)
    return _Kind(f"a list of two numbers, each {_range_words(lo, hi, False, hi_open)}",
                 lambda v: isinstance(v, list) and len(v) == 2 and all(number.accept(x) for x in v),
                 frozenset({"list"}))


# --------------------------------------------------------------------------------------------
# Formatting: the bad value, the type hint and the corrected example.
# --------------------------------------------------------------------------------------------

_TYPE_NAMES = {"bool": "a bool", "int": "an integer", "float": "a float", "str": "a string",
               "list": "a list", "dict": "a mapping"}
_TRUE_WORDS = {"true", "yes", "y", "on", "1"}
_FALSE_WORDS = {"false", "no", "n", "off", "0"}
_PLAIN_STRING = re.compile(r"^[\w./\\~:+\-]+$")


def _type_name(v: Any) -> str:
    return "bool" if isinstance(v, bool) else type(v).__name__


def _parse_number(s: str) -> int | float | None:
    """Returns the number a string spells (``"5"``, ``"1e-3"``), or None."""
    try:
        return int(s)
    except ValueError:
        pass
    try:
        x = float(s)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _candidates(v: Any) -> list[Any]:
    """Values the user may have meant by ``v``, most likely first (used for the corrected example)."""
    out: list[Any] = []
    if isinstance(v, str):
        s = v.strip().lower()
        n = _parse_number(v.strip())
        if n is not None:
            out.append(n)
            if isinstance(n, float) and n.is_integer():
                out.append(int(n))
        if s in _TRUE_WORDS:
            out.append(True)
        elif s in _FALSE_WORDS:
            out.append(False)
    elif isinstance(v, float) and math.isfinite(v):
        out.append(int(math.floor(v + 0.5)))
    elif _is_int(v):
        if v in (0, 1):
            out.append(bool(v))
        out.append(float(v))
    return out


def _hint(v: Any, kind: _Kind) -> str:
    """A parenthesised note on a value whose type the key never takes, e.g. ``" (got a float)"``."""
    if v is None:
        return " (null is not allowed here)"
    t = _type_name(v)
    if t in kind.types:
        return ""
    if isinstance(v, str):
        s = v.strip().lower()
        if "bool" in kind.types and s in _TRUE_WORDS | _FALSE_WORDS:
            return " (got a string; write true or false)"
        if _parse_number(v.strip()) is not None:
            return " (got a string; write the number without quotes)"
        return " (got a string)" if kind.types <= {"bool"} else ""
    return f" (got {_TYPE_NAMES.get(t, t)})"


def _override(v: Any) -> str:
    """Writes ``v`` in Hydra's override syntax."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        if _PLAIN_STRING.match(v) and _parse_number(v) is None and v.lower() not in {"true", "false", "null"}:
            return v
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_override(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_override(x)}" for k, x in v.items()) + "}"
    return str(v)


def _plain(v: Any) -> Any:
    """Turns a DictConfig/ListConfig into plain Python (resolving only inside it)."""
    if isinstance(v, (DictConfig, ListConfig)):
        return OmegaConf.to_container(v, resolve=True)
    return v


# --------------------------------------------------------------------------------------------
# The checker.
# --------------------------------------------------------------------------------------------


class _Checker:
    """Reads keys one at a time from ``cfg`` and collects one problem line per bad key."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.problems: list[str] = []

    def _add(self, key: str, shown: str, allowed: str, hint: str, example: str) -> None:
        self.problems.append(f"{key}{shown}: {allowed} is needed{hint}; e.g. {example}")

    def _source(self, key: str) -> str | None:
        """Returns the interpolation text of ``key`` (e.g. ``${data.num_classes}``), or None."""
        parent_key, _, last = key.rpartition(".")
        try:
            parent = OmegaConf.select(self.cfg, parent_key, default=None) if parent_key else self.cfg
            if isinstance(parent, DictConfig) and OmegaConf.is_interpolation(parent, last):
                return str(parent._get_node(last)._value())
        except Exception:  # the raw text is only decoration: never fail on it
            return None
        return None

    def read(self, key: str, allowed: str, example: Any, *, required: bool, plain: bool = True) -> Any:
        """Returns the value of ``key``, or ``_ABSENT`` when it is absent or unreadable.

        An absent required key, a mandatory ``???`` value and an interpolation that cannot be
        resolved are recorded as problems here.

        Args:
            key: the full dotted key.
            allowed: what the key accepts, in words (for the problem line).
            example: a valid value (for the problem line).
            required: whether an absent key is a problem.
            plain: turn a mapping or list into plain Python, resolving inside it; false leaves it
                a DictConfig/ListConfig, unresolved (for a group whose other keys are not checked).

        Returns:
            The value, or ``_ABSENT``.
        """
        try:
            value = OmegaConf.select(self.cfg, key, default=_ABSENT, throw_on_missing=True)
            if plain:
                value = _plain(value)
        except MissingMandatoryValue:
            self._add(key, "='???' (not set)", allowed, "", f"{key}={_override(example)}")
            return _ABSENT
        except Exception as e:  # InterpolationResolutionError and friends, hydra's resolver errors
            raw = self._source(key)
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            shown = f"={raw!r}" if raw is not None else ""
            self.problems.append(f"{key}{shown}: the interpolation cannot be resolved ({reason}); "
                                 f"{allowed} is needed; e.g. {key}={_override(example)}")
            return _ABSENT
        if value is _ABSENT and required:
            self._add(key, " is absent", allowed, "", f"+{key}={_override(example)}")
        return value

    def check(self, key: str, kind: _Kind, example: Any, *, required: bool = True, null: str | None = None,
              note: Callable[[Any], str | None] | None = None) -> Any:
        """Checks one key; returns its value when it is present and accepted, else ``_ABSENT``.

        Args:
            key: the full dotted key.
            kind: what the key accepts.
            example: a valid value for the corrected example (a closer correction of the bad
                value is preferred when there is one).
            required: whether an absent key is a problem.
            null: None when null is refused; otherwise what null means (e.g. ``"no seeding"``),
                and then null and an absent key are fine.
            note: extra words for particular bad values (e.g. why ``-1`` is refused).

        Returns:
            The accepted value, None for an accepted null, or ``_ABSENT``.
        """
        allowed = kind.allowed + (f" or null ({null})" if null else "")
        value = self.read(key, allowed, example, required=required and null is None)
        if value is _ABSENT:
            return _ABSENT
        if value is None and null is not None:
            return None
        if value is not None and kind.accept(value):
            return value
        fix = next((c for c in _candidates(value) if kind.accept(c)), example)
        raw = self._source(key)
        shown = f"={value!r}" + (f" (from {raw})" if raw else "")
        extra = note(value) if note is not None and value is not None else None
        hint = _hint(value, kind) + (f" ({extra})" if extra else "")
        self._add(key, shown, allowed, hint, f"{key}={_override(fix)}")
        return _ABSENT

    def group(self, key: str, example: str) -> bool:
        """Checks that the top-level group ``key`` is a mapping; returns whether it is."""
        try:
            value = OmegaConf.select(self.cfg, key, default=_ABSENT, throw_on_missing=True)
        except Exception as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.problems.append(f"{key}: the group cannot be read ({reason}); a config group is needed; "
                                 f"e.g. {example}")
            return False
        if isinstance(value, DictConfig):
            return True
        shown = " is absent" if value is _ABSENT else f"={_plain(value)!r}"
        self.problems.append(f"{key}{shown}: a config group (a mapping) is needed; e.g. {example}")
        return False


def _refuse(**notes: str) -> Callable[[Any], str | None]:
    """Notes for particular refused values, keyed by ``repr`` of the value: ``_refuse(**{"-1": "..."})``."""

    def note(v: Any) -> str | None:
        return notes.get(repr(v)) if _is_number(v) else None

    return note


_PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", "64", "16", "bf16",
               32, 16, 64)
_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
_UNIT = _float(0.0, 1.0, lo_open=True)  # a fraction in (0, 1]
_DEVICE = _Kind("one of 'cpu', 'cuda', 'cuda:N', 'mps'",
                lambda v: isinstance(v, str) and re.fullmatch(r"cpu|mps|cuda(:\d+)?", v) is not None,
                frozenset({"str"}))


def _tags_note(v: Any) -> str | None:
    """What to write instead of a refused ``tags`` value."""
    if isinstance(v, str):
        return f"write a list: tags=[{_override(v)}]"
    if isinstance(v, list) and any(_is_number(x) or isinstance(x, bool) for x in v):
        return "a number or a bool is not a string: quote it, e.g. tags=['2024']"
    return None


def _check_top(c: _Checker) -> None:
    c.check("seed", _int(0, _SEED_MAX), 0, null="no seeding")
    c.check("ckpt_path", _string(), "last", null="start from scratch")
    c.check("test_on_best", _bool(), True)
    c.check("overwrite", _bool(), False, required=False)
    c.check("paper_result", _string(nonempty=False), None, null="the dataset's plain top-1 figure")
    c.check("task_name", _string(), "train")
    c.check("channels_last", _bool(), True, required=False)
    c.check("compile", _any_of(_bool(), _mapping()), True, required=False, null="no compile")
    c.check("tags", _string_list(), ["baseline", "cifar"], required=False, null="no tags", note=_tags_note)
    c.check("print_config", _bool(), True, required=False)
    # the value a run returns to a Hydra sweeper (hparams_search=optuna sets val/acc_best)
    c.check("optimized_metric", _choice(*OPTIMIZED_METRICS), "val/acc_best", required=False,
            null="return test/acc")


#: The metrics of ``results.json`` a run may return to a Hydra sweeper (top-level ``optimized_metric``).
OPTIMIZED_METRICS = ("val/acc_best", "test/acc")
#: wandb.init's modes (``logger.wandb.mode``, from ``$WANDB_MODE`` by default).
_WANDB_MODES = ("online", "offline", "disabled", "shared", "dryrun", "run")


def _check_loggers(c: _Checker) -> None:
    """The keys of the optional trackers: ``logger=wandb`` and ``logger=mlflow`` (absent otherwise)."""
    c.check("logger.wandb.mode", _choice(*_WANDB_MODES), "offline", required=False,
            null="wandb's default: $WANDB_MODE, else online")
    c.check("logger.wandb.offline", _bool(), False, required=False)
    c.check("logger.wandb.project", _string(), "zoo", required=False, null="$WANDB_PROJECT, else lightning_logs")
    c.check("logger.mlflow.tracking_uri", _string(), "sqlite:///mlflow.db", required=False,
            null="$MLFLOW_TRACKING_URI, else ./mlruns")
    c.check("logger.mlflow.experiment_name", _string(), "zoo", required=False)


def _check_loss(c: _Checker) -> None:
    c.check("loss.label_smoothing", _number(0, 1, hi_open=True), 0.1)
    c.check("loss.aux_weight", _number(0), 0.3)


def _check_trainer(c: _Checker) -> None:
    max_epochs = c.check("trainer.max_epochs", _int(1), 30,
                         note=_refuse(**{"-1": "-1 would make Lightning train forever"}))
    min_epochs = c.check("trainer.min_epochs", _int(0), 1, null="no minimum")
    if _is_int(max_epochs) and _is_int(min_epochs) and min_epochs > max_epochs:
        c.problems.append(f"trainer.min_epochs={min_epochs!r}: an integer <= trainer.max_epochs ({max_epochs}) "
                          f"is needed; e.g. trainer.min_epochs={max_epochs}")
    c.check("trainer.check_val_every_n_epoch", _int(1), 1, null="validate on a step interval instead")
    c.check("trainer.log_every_n_steps", _int(1), 10)
    c.check("trainer.gradient_clip_val", _number(0, lo_open=True), 1.0, null="no clipping",
            note=_refuse(**{"0": "0 would clip nothing; use null", "0.0": "0 would clip nothing; use null"}))
    c.check("trainer.gradient_clip_algorithm", _choice("norm", "value"), "norm", null="Lightning's default, 'norm'")
    c.check("trainer.deterministic", _bool("warn"), False, null="Lightning's default: leave torch's setting")
    c.check("trainer.precision", _choice(*_PRECISIONS), "32-true")
    c.check("trainer.accelerator", _choice(*_ACCELERATORS), "auto")
    c.check("trainer.devices", _any_of(_int(1), _choice("auto"), _int_list(0)), 1)
    # data-parallel training (trainer=ddp, trainer=ddp_sim): processes = devices x num_nodes
    c.check("trainer.num_nodes", _int(1), 2, required=False)
    c.check("trainer.sync_batchnorm", _bool(), True, required=False)
    c.check("trainer.strategy", _any_of(_string(), _mapping()), "ddp", required=False,
            null="Lightning's default, 'auto'")
    c.check("trainer.accumulate_grad_batches", _int(1), 1, required=False)
    c.check("trainer.limit_train_batches", _any_of(_UNIT, _int(1)), 1.0, required=False, null="all batches",
            note=_refuse(**{"0": "0 would skip training", "0.0": "0 would skip training"}))
    c.check("trainer.limit_val_batches", _any_of(_float(0.0, 1.0), _int(0)), 1.0, required=False,
            null="all batches")
    c.check("trainer.limit_test_batches", _any_of(_UNIT, _int(1)), 1.0, required=False, null="all batches",
            note=_refuse(**{"0": "0 would skip the test", "0.0": "0 would skip the test"}))
    c.check("trainer.fast_dev_run", _any_of(_bool(), _int(1)), False, required=False)
    c.check("trainer.overfit_batches", _any_of(_float(0.0, 1.0), _int(0)), 0, required=False)
    c.check("trainer.num_sanity_val_steps", _int(-1), 2, required=False)


def _check_data(c: _Checker) -> None:
    c.check("data.batch_size", _int(1), 128)
    c.check("data.eval_batch_size", _int(1), 512, null="the training batch size")
    c.check("data.num_workers", _int(0), 0)
    c.check("data.image_size", _int(1), 32, null="the dataset's own size")
    split = _any_of(_int(1), _float(0.0, 1.0, lo_open=True, hi_open=True))
    c.check("data.val_size", split, 5000)
    c.check("data.test_size", split, 360, required=False)
    c.check("data.split_seed", _int(0), 0)
    c.check("data.augment", _string(), "none")
    c.check("data.augment_kwargs", _mapping(), {"padding": 4}, null="no arguments")
    for name in ("download", "pin_memory", "persistent_workers", "drop_last"):
        c.check(f"data.{name}", _bool(), False, required=name == "download")
    c.check("data.resize_mode", _choice("pad", "resize"), "pad", required=False)
    c.check("data.device", _DEVICE, "cuda", required=False, null="the trainer's device",
            note=lambda v: "write 'cuda'" if isinstance(v, str) and v.strip().lower() == "gpu" else None)
    c.check("data.root", _string(nonempty=False), "../shared/data", null="the default data folder")
    _check_augment_options(c)


def _check_optim(c: _Checker) -> None:
    c.check("optim._target_", _string(), "torch.optim.SGD")
    # lr=0 is refused too: the run would train nothing and report the untrained model.
    c.check("optim.lr", _number(0, lo_open=True), 0.001)
    c.check("optim.weight_decay", _number(0), 0.0001, required=False)
    c.check("optim.momentum", _number(0, 1, hi_open=True), 0.9, required=False)
    c.check("optim.betas", _number_pair(0, 1, hi_open=True), [0.9, 0.999], required=False)
    c.check("optim.eps", _number(0, lo_open=True), 1e-08, required=False)
    c.check("optim.nesterov", _bool(), False, required=False)


def _check_sched(c: _Checker) -> None:
    c.check("sched.interval", _choice("step", "epoch"), "epoch")
    c.check("sched.warmup_steps", _int(0), 0, required=False)
    c.check("sched.warmup_factor", _number(0, 1, lo_open=True), 0.1, required=False)
    c.check("sched.warmup_mode", _choice("linear", "constant"), "linear", required=False)
    c.check("sched.monitor", _string(), "val/loss", required=False)
    scheduler = c.read("sched.scheduler", "a mapping with _target_ or null (a constant learning rate)", None,
                       required=False, plain=False)
    if scheduler is _ABSENT or scheduler is None:
        return
    if not isinstance(scheduler, DictConfig):
        scheduler = OmegaConf.to_container(scheduler) if isinstance(scheduler, ListConfig) else scheduler
        c.problems.append(f"sched.scheduler={scheduler!r}: a mapping with _target_ or null (a constant learning "
                          f"rate) is needed; e.g. sched.scheduler=null (or a schedule: sched=cosine)")
        return
    s = "sched.scheduler."
    c.check(s + "_target_", _string(), "torch.optim.lr_scheduler.CosineAnnealingLR")
    c.check(s + "T_max", _int(1), None, required=False, null="the total number of steps or epochs")
    c.check(s + "eta_min", _number(0), 0.0, required=False)
    c.check(s + "milestones", _int_list(1, increasing=True), [50, 75], required=False)
    c.check(s + "gamma", _number(0, 1, lo_open=True), 0.1, required=False)
    c.check(s + "step_size", _int(1), 30, required=False)
    c.check(s + "total_steps", _int(1), None, required=False, null="the total number of steps")
    c.check(s + "pct_start", _number(0, 1, lo_open=True, hi_open=True), 0.3, required=False)
    c.check(s + "patience", _int(0), 5, required=False)
    c.check(s + "factor", _number(0, 1, lo_open=True, hi_open=True), 0.1, required=False)


def _noted(kind: _Kind, words: str = "0: off") -> _Kind:
    """``kind`` with a note added to its words, e.g. ``a number >= 0 (0: off)``."""
    return _Kind(f"{kind.allowed} ({words})", kind.accept, kind.types)


def _check_recipes(c: _Checker) -> None:
    """The training recipes, each optional (absent: off): ``ema``, ``mixup``, ``cutmix``, ``mix_prob``."""
    groups = {"ema": ("ema.enabled=true", "{enabled, decay, warmup}"), "mixup": ("mixup.alpha=0.2", "{alpha}"),
              "cutmix": ("cutmix.alpha=1.0", "{alpha}")}
    for group, (example, keys) in groups.items():
        value = c.read(group, f"a mapping {keys}", example, required=False, plain=False)
        if value is _ABSENT or value is None or isinstance(value, DictConfig):
            continue
        c.problems.append(f"{group}={_plain(value)!r}: a mapping {keys} is needed{_hint(_plain(value), _mapping())}; "
                          f"e.g. {example}")
    c.check("ema.enabled", _bool(), True, required=False)
    c.check("ema.decay", _number(0, 1, hi_open=True), 0.9998, required=False,
            note=_refuse(**{"1": "1 would never move the average", "1.0": "1 would never move the average"}))
    c.check("ema.warmup", _bool(), True, required=False)
    c.check("mixup.alpha", _noted(_number(0)), 0.2, required=False)
    c.check("cutmix.alpha", _noted(_number(0)), 1.0, required=False)
    c.check("mix_prob", _number(0, 1), 1.0, required=False)


def _check_augment_options(c: _Checker) -> None:
    """The options of the augmentation policies and of random erasing in ``data.augment_kwargs``."""
    k = "data.augment_kwargs."
    c.check(k + "erase_p", _noted(_number(0, 1)), 0.25, required=False)
    c.check(k + "num_ops", _int(0), 2, required=False)
    bins = c.check(k + "num_magnitude_bins", _int(2), 31, required=False)
    top = bins - 1 if _is_int(bins) else 30
    c.check(k + "magnitude", _noted(_int(0, top), f"below num_magnitude_bins={top + 1}"), min(9, top), required=False)
    c.check(k + "flip", _bool(), False, required=False)
    c.check(k + "crop", _choice("pad", "resized", "none"), "pad", required=False)


def _check_callbacks(c: _Checker) -> None:
    c.check("callbacks.last_checkpoint.every_n_train_steps", _int(0), 500, required=False)
    c.check("callbacks.model_checkpoint.save_top_k", _int(-1), 1, required=False)


def _check_model(c: _Checker) -> None:
    c.check("model.name", _string(), "lenet5")
    c.check("model.num_classes", _int(1), 10, required=False, null="taken from the data")
    c.check("model.in_chans", _int(1), 3, required=False, null="taken from the data")
    c.check("model.small_input", _bool(), True, required=False, null="taken from the data")
    c.check("model.image_size", _int(1), 32, required=False, null="taken from the data")
    for name in ("dropout", "attn_dropout", "aux_dropout", "drop_path_rate"):
        c.check(f"model.{name}", _number(0, 1, hi_open=True), 0.1, required=False)


_GROUPS: tuple[tuple[str, str, Callable[[_Checker], None]], ...] = (
    ("loss", "+loss={label_smoothing:0.0,aux_weight:0.3}", _check_loss),
    ("trainer", "trainer=default", _check_trainer),
    ("data", "data=digits", _check_data),
    ("optim", "optim=adam", _check_optim),
    ("sched", "sched=cosine", _check_sched),
)


def validate_config(cfg: DictConfig) -> None:
    """Checks the type and range of every key the training run reads, before anything is built.

    Keys are read one at a time (the config is never resolved as a whole), so interpolations that
    only resolve inside a Hydra run, such as ``paths.output_dir``, do not matter unless a checked
    key uses one.

    Args:
        cfg: the composed ``configs/train.yaml`` (with its groups and command-line overrides).

    Raises:
        ConfigError: listing every problem found (all of them at once, one line each).
    """
    c = _Checker(cfg)
    _check_top(c)
    for name, example, check in _GROUPS:
        if c.group(name, example):
            check(c)
    _check_recipes(c)
    _check_callbacks(c)  # an optional group: callbacks=none leaves it empty
    _check_loggers(c)
    if c.group("model", "model=lenet5"):
        _check_model(c)
    if c.problems:
        raise ConfigError(c.problems)
    log.debug("config validated")
