"""Configuration references rendered from the pydantic models that validate the YAML files.

Each key's type, default and constraints come from the model's fields; its description from
the field's ``description`` or, failing that, from the comment written after the field in the
source. Nested sections are flattened into dotted keys (``train.lr``), as ``--set`` takes them;
a list or mapping of sections gets a table of its own.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import re
import tokenize
import types
import typing
from enum import Enum
from pathlib import PurePath
from typing import Any

from docgen_table import code, table, text
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

# marker argument -> (public module, model class, what the top-level keys are)
MODELS = {
    "policy": ("bastion.guard.policy", "_Policy", "the policy file"),
    "policy-entry": (
        "bastion.guard.policy",
        "_Entry",
        "one rail (an entry of input, output or context)",
    ),
    "gateway": ("bastion.serve.config", "GatewayConfig", "the gateway file"),
    "recipe-dpo": ("bastion.align.recipe", "PreferenceRecipe", "a `bastion align dpo` recipe"),
    "recipe-sft": ("bastion.align.recipe", "SftRecipe", "a `bastion align sft` recipe"),
    "recipe-rm": ("bastion.align.recipe", "RewardRecipe", "a `bastion align rm` recipe"),
    "recipe-ppo": ("bastion.align.recipe", "PpoRecipe", "a `bastion align ppo` recipe"),
    "recipe-loop": ("bastion.loop.config", "LoopConfig", "a `bastion loop` recipe"),
}


def load_model(key: str) -> type[BaseModel]:
    module_name, class_name, _ = MODELS[key]
    module = importlib.import_module(module_name)
    model = getattr(module, class_name)  # AttributeError: renamed; the build fails, as it should
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{module_name}.{class_name} is not a pydantic model")
    return model


def render_model(arg: str) -> str:
    """``<!-- generate: keys recipe-dpo -->``: every key of one model, sections flattened."""
    if arg not in MODELS:
        raise KeyError(f"unknown model {arg!r}; known: {', '.join(MODELS)}")
    model = load_model(arg)
    parts = [f"Validated by {code(_qualname(model))}.", _table(model, later := [])]
    # a list or mapping of sections: one table per section class, naming every key that holds it
    seen: dict[type[BaseModel], list[tuple[str, str]]] = {}
    while later:
        path, section, how = later.pop(0)
        if section not in seen:
            seen[section] = []
            parts.append(f"<!-- section {_qualname(section)} -->")
            parts.append(_table(section, later))
        seen[section].append((how, path))
    for section, holders in seen.items():
        where = parts.index(f"<!-- section {_qualname(section)} -->")
        parts[where] = f"**{_holders(holders)}** ({code(_qualname(section))}):"
    return "\n\n".join(parts)


def _holders(holders: list[tuple[str, str]]) -> str:
    """[("each entry of", "input"), ("each entry of", "output")] -> "Each entry of `input` or
    `output`"."""
    by_how: dict[str, list[str]] = {}
    for how, path in holders:
        by_how.setdefault(how, []).append(code(path))
    phrases = [
        f"{how} {', '.join(paths[:-1])} or {paths[-1]}" if len(paths) > 1 else f"{how} {paths[0]}"
        for how, paths in by_how.items()
    ]
    sentence = "; ".join(phrases)
    return sentence[0].upper() + sentence[1:]


def _qualname(model: type) -> str:
    return f"{model.__module__}.{model.__name__}"


def _table(model: type[BaseModel], later: list[tuple[str, type[BaseModel], str]]) -> str:
    rows: list[list[str]] = []
    _rows(model, None, "", rows, later)
    return table(["key", "type", "default", "meaning"], rows)


def _rows(
    model: type[BaseModel],
    instance: Any,
    prefix: str,
    rows: list[list[str]],
    later: list[tuple[str, type[BaseModel], str]],
) -> None:
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if instance is not None:
            default: Any = getattr(instance, name)
        elif field.is_required():
            default = PydanticUndefined
        else:
            default = field.get_default(call_default_factory=True)
        section = _section(field.annotation)
        if section is not None and default is not PydanticUndefined:
            note = " or `null`" if _optional(field.annotation) else ""
            rows.append(
                [
                    code(key),
                    f"section{note}",
                    "" if default is not None else "`null`",
                    text(_describe(model, name, field)),
                ]
            )
            _rows(section, default if default is not None else None, f"{key}.", rows, later)
            continue
        item = _item_section(field.annotation)
        if item is not None:
            how, section_type = item
            later.append((key, section_type, how))
        rows.append(
            [
                code(key),
                text(_type_name(field.annotation)),
                "required" if default is PydanticUndefined else code(_yaml(default)),
                text(_join(_describe(model, name, field), _constraints(field.metadata))),
            ]
        )


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _strip_optional(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    if _is_union(annotation):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _optional(annotation: Any) -> bool:
    return _is_union(annotation) and type(None) in typing.get_args(annotation)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _section(annotation: Any) -> type[BaseModel] | None:
    inner = _strip_optional(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _item_section(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    inner = _strip_optional(annotation)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is list and args and (section := _section(args[0])):
        return "each entry of", section
    if origin is dict and len(args) == 2 and (section := _section(args[1])):
        return "each value of", section
    return None


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Annotated:
        return _type_name(args[0])
    if _is_union(annotation):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is list and args and _section(args[0]):
        return "list of entries (table below)"
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict and len(args) == 2 and _section(args[1]):
        return f"mapping of {_type_name(args[0])} to an entry (table below)"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}" if args else "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(metadata: list[Any]) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    found = []
    for item in metadata:
        for attr, symbol in words.items():
            if getattr(item, attr, None) is not None:
                found.append(f"{symbol} {getattr(item, attr)}")
        if getattr(item, "min_length", None) is not None:
            found.append("not empty" if item.min_length == 1 else f"length ≥ {item.min_length}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            choice = re.fullmatch(r"\^\(([\w|-]+)\)\$", pattern)
            found.append(
                "one of " + ", ".join(choice.group(1).split("|"))
                if choice
                else f"matches {pattern}"
            )
    return ", ".join(found)


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (PurePath, Enum)):
        return str(value.value if isinstance(value, Enum) else value)
    if isinstance(value, (list, tuple, dict, BaseModel)):
        return json.dumps(_plain(value))
    return str(value)


def _plain(value: Any) -> Any:
    """A default as YAML would hold it; a section only with the keys it sets."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, PurePath):
        return str(value)
    return value


def _describe(model: type[BaseModel], name: str, field: Any) -> str:
    if field.description:
        return str(field.description)
    for klass in model.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            return _field_comments(klass).get(name, "")
    return ""


_COMMENTS: dict[type, dict[str, str]] = {}


def _field_comments(klass: type) -> dict[str, str]:
    """``name: type = default  # what it is`` -> {name: "what it is"}, from the class body."""
    if klass not in _COMMENTS:
        source = inspect.getsource(klass)
        comments: dict[str, str] = {}
        line_name: dict[int, str] = {}
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        for index, token in enumerate(tokens[:-1]):
            after = tokens[index + 1]
            if token.type == tokenize.NAME and after.string == ":" and token.start[1] == 4:
                line_name[token.start[0]] = token.string
            elif token.type == tokenize.COMMENT and token.start[0] in line_name:
                comments[line_name[token.start[0]]] = token.string.lstrip("#").strip()
        _COMMENTS[klass] = comments
    return _COMMENTS[klass]


def render_scanners(arg: str) -> str:
    """``<!-- generate: scanners -->``: every registered scanner and the options its entry takes
    (the scanner's constructor: the policy checks an entry's other keys against it)."""
    from bastion.guard.scanners import SCANNERS

    rows = []
    for name, scanner in SCANNERS.items():
        doc = inspect.cleandoc(scanner.__doc__ or "").split("\n\n")[0]
        options = []
        for param in list(inspect.signature(scanner.__init__).parameters.values())[1:]:
            if param.name == "threshold" or param.kind not in (
                param.KEYWORD_ONLY,
                param.POSITIONAL_OR_KEYWORD,
            ):
                continue
            default = "" if param.default is param.empty else f" = {_yaml(param.default)}"
            options.append(code(f"{param.name}: {_annotation(param.annotation)}{default}"))
        rows.append(
            [
                code(name),
                text(scanner.stage),
                text(doc.replace("``", "")),
                "<br>".join(options) or "–",
            ]
        )
    return table(["scanner", "stage", "what it does", "options"], rows)


def render_roles(arg: str) -> str:
    """``<!-- generate: default-roles -->``: the rails each role gets when ``roles`` is silent."""
    from bastion.guard.policy import DEFAULT_ROLES

    return table(
        ["role", "rails"], [[code(role), code(stage)] for role, stage in DEFAULT_ROLES.items()]
    )


def _annotation(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else _type_name(annotation)
