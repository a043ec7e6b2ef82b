"""Handlers are registered by name; a Job Type names one. Nothing stored is ever imported blindly."""

import importlib
import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import ValidationError
from .retry import STRATEGIES
from .states import PRIORITIES


@dataclass(frozen=True)
class JobTypeSpec:
	"""The defaults a handler module declares for its job type; `init` turns them into Job Type rows."""

	type_name: str
	handler: str
	display_name: str = ""
	description: str = ""
	timeout: int = 300
	priority: str = "Normal"
	max_retries: int = 5
	retry_strategy: str = "exponential"
	base_delay: float = 60
	max_delay: float = 3600
	jitter: float = 0.1
	deduplication_window: int = 300
	requires_permission: str = ""
	# Exception classes the handler's author classifies (retry.classify): not stored on the Job Type.
	retry_on: tuple[type[BaseException], ...] = ()
	give_up_on: tuple[type[BaseException], ...] = ()
	# The step names the handler runs (ctx.step), in order: progress follows them, and a step of
	# another name is an error. Empty: any name, and progress is the handler's own.
	steps: tuple[str, ...] = ()
	# Failed items (ctx.each) an attempt tolerates; beyond, it fails after the other items ran.
	max_failed_items: int = 0

	def as_job_type_row(self) -> dict:
		return {
			"name": self.type_name,
			"type_name": self.type_name,
			"display_name": self.display_name or self.type_name.replace("_", " ").title(),
			"description": self.description,
			"handler": self.handler,
			"default_timeout": self.timeout,
			"default_priority": self.priority,
			"max_retries": self.max_retries,
			"retry_strategy": self.retry_strategy,
			"base_delay": self.base_delay,
			"max_delay": self.max_delay,
			"jitter": self.jitter,
			"deduplication_window": self.deduplication_window,
			"requires_permission": self.requires_permission,
			"is_enabled": 1,
		}


@dataclass
class Registry:
	handlers: dict[str, Callable] = field(default_factory=dict)
	specs: dict[str, JobTypeSpec] = field(default_factory=dict)

	def register(self, spec: JobTypeSpec, func: Callable) -> None:
		existing = self.handlers.get(spec.handler)
		if existing is not None and existing is not func and _qualname(existing) != _qualname(func):
			raise ValueError(f"handler {spec.handler!r} is already registered by {_qualname(existing)}")
		self.handlers[spec.handler] = func
		self.specs[spec.type_name] = spec

	def get(self, handler: str) -> Callable | None:
		return self.handlers.get(handler)

	def spec_for(self, job_type: str, handler: str) -> JobTypeSpec | None:
		"""What the decorator declared for the job type; for a Job Type row that no decorator
		declared (an admin's, naming a registered handler), a spec with that handler."""
		spec = self.specs.get(job_type)
		if spec is None or spec.handler != handler:
			spec = next((s for s in self.specs.values() if s.handler == handler), None)
		return spec


registry = Registry()


def job_type_problems(row: dict) -> list[tuple[str, str]]:
	"""What is wrong with a job type's settings, as (field, problem): one rule for the decorator
	and the Job Type form."""
	problems = []
	if row.get("default_priority", "Normal") not in PRIORITIES:
		problems.append(("default_priority", f"must be one of {', '.join(PRIORITIES)}"))
	if row.get("retry_strategy", "exponential") not in STRATEGIES:
		problems.append(("retry_strategy", f"must be one of {', '.join(STRATEGIES)}"))
	numbers = {  # field: (lowest, highest, problem)
		"default_timeout": (1, None, "must be at least 1 second"),
		"max_retries": (0, None, "must be zero or more"),
		"base_delay": (0, None, "must be zero or more seconds"),
		"max_delay": (0, None, "must be zero or more seconds"),
		"jitter": (0, 1, "must be from 0 to 1"),
		"deduplication_window": (0, None, "must be zero or more seconds"),
	}
	for name, (low, high, problem) in numbers.items():
		value = row.get(name)
		if value is None:
			continue
		if (
			isinstance(value, bool)
			or not isinstance(value, int | float)
			or value < low
			or (high is not None and value > high)
		):
			problems.append((name, problem))
	base, ceiling = row.get("base_delay"), row.get("max_delay")
	if isinstance(base, int | float) and isinstance(ceiling, int | float) and 0 < ceiling < base:
		problems.append(("max_delay", "must not be less than base_delay"))
	return problems


def job_handler(
	type_name: str,
	*,
	handler: str | None = None,
	timeout: int = 300,
	priority: str = "Normal",
	max_retries: int = 5,
	retry_strategy: str = "exponential",
	base_delay: float = 60,
	max_delay: float = 3600,
	jitter: float = 0.1,
	deduplication_window: int = 300,
	display_name: str = "",
	description: str = "",
	requires_permission: str = "",
	retry_on: type[BaseException] | Iterable[type[BaseException]] = (),
	give_up_on: type[BaseException] | Iterable[type[BaseException]] = (),
	steps: Iterable[str] = (),
	max_failed_items: int = 0,
) -> Callable[[Callable], Callable]:
	"""Register `func(ctx, **params)` as the handler of job type `type_name` with its defaults.
	`retry_on` / `give_up_on`: exception classes that make a failed attempt Transient (retried)
	or Permanent (dead-lettered), checked before the built-in classification (retry.classify).
	`steps`: the names of the handler's ctx.step calls, in order (progress follows them).
	`max_failed_items`: failed items of ctx.each an attempt tolerates (default none)."""
	retry_on, give_up_on = (
		_exception_classes("retry_on", retry_on),
		_exception_classes("give_up_on", give_up_on),
	)
	problems = job_type_problems(
		{
			"default_priority": priority,
			"retry_strategy": retry_strategy,
			"default_timeout": timeout,
			"max_retries": max_retries,
			"base_delay": base_delay,
			"max_delay": max_delay,
			"jitter": jitter,
			"deduplication_window": deduplication_window,
		}
	)
	steps = _step_names(steps)
	if isinstance(max_failed_items, bool) or not isinstance(max_failed_items, int) or max_failed_items < 0:
		problems.append(("max_failed_items", "must be a whole number, zero or more"))
	if problems:
		raise ValueError("; ".join(f"{field} {problem}" for field, problem in problems))

	def decorate(func: Callable) -> Callable:
		spec = JobTypeSpec(
			type_name=type_name,
			handler=handler or type_name,
			display_name=display_name,
			description=description or (inspect.getdoc(func) or "").split("\n")[0],
			timeout=timeout,
			priority=priority,
			max_retries=max_retries,
			retry_strategy=retry_strategy,
			base_delay=base_delay,
			max_delay=max_delay,
			jitter=jitter,
			deduplication_window=deduplication_window,
			requires_permission=requires_permission,
			retry_on=retry_on,
			give_up_on=give_up_on,
			steps=steps,
			max_failed_items=max_failed_items,
		)
		registry.register(spec, func)
		return func

	return decorate


def _exception_classes(name: str, value) -> tuple[type[BaseException], ...]:
	classes = (value,) if isinstance(value, type) else tuple(value)
	for cls in classes:
		if not (isinstance(cls, type) and issubclass(cls, BaseException)):
			raise ValueError(f"{name} must be exception classes, not {cls!r}")
	return classes


def _step_names(steps) -> tuple[str, ...]:
	names = (steps,) if isinstance(steps, str) else tuple(steps)
	for name in names:
		if not isinstance(name, str) or not name.strip() or len(name) > 140:
			raise ValueError(f"steps must be non-empty names of at most 140 characters, not {name!r}")
	if len(set(names)) != len(names):
		raise ValueError(f"steps must not repeat a name: {list(names)}")
	return names


def env_imports() -> list[str]:
	"""Handler modules named in DARTWING_IMPORTS (comma-separated)."""
	return [name.strip() for name in os.environ.get("DARTWING_IMPORTS", "").split(",") if name.strip()]


def import_handler_modules(modules: Iterable[str]) -> None:
	"""Import the user's handler modules (--import / DARTWING_IMPORTS) so their decorators run."""
	for name in modules:
		name = name.strip()
		if not name:
			continue
		try:
			importlib.import_module(name)
		except ImportError as exc:
			raise ValidationError("import", f"cannot import handler module {name!r}: {exc}") from exc


def _qualname(func: Callable) -> str:
	return f"{func.__module__}.{func.__qualname__}"
