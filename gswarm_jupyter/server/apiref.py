"""The reference sections of docs/api.md (routes, records) rendered from an OpenAPI document.

Invariant: every word said of a route or a record here is read from the document (and the route
table's Authorizer resources, and the request examples it is given); nothing is written by hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

METHODS = ("get", "put", "post", "patch", "delete", "head", "options")

TAG_TITLES = {
    "system": "System",
    "nodes": "Nodes",
    "models": "Model registry and placement",
    "services": "Services",
    "data": "Data pool",
    "queue": "Task queue",
    "profiler": "Profiler",
    "compute": "Compute plane",
    "keys": "Keys and audit",
}


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc.get("paths", {}).items()
        for method, op in item.items()
        if method in METHODS and isinstance(op, dict)
    ]


class Reference:
    """The routes and records sections of one OpenAPI document."""

    def __init__(self, doc: dict[str, Any], resources: dict[str, str],
                 examples: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.doc = doc
        self.resources = resources
        self.examples = examples  # request bodies of the examples, where the schema gives none
        self.schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})

    # -- references and types ---------------------------------------------------------------

    def resolve(self, node: Any) -> Any:
        """`node` with `$ref`s to the document itself followed (at most 20 deep)."""
        for _ in range(20):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node
            found: Any = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                found = found.get(part.replace("~1", "/").replace("~0", "~"), {}) \
                    if isinstance(found, dict) else {}
            node = found
        return node

    def record_link(self, ref: str) -> str:
        name = ref.rsplit("/", 1)[-1]
        if ref.startswith("#/components/schemas/") and name in self.schemas:
            return f"[`{name}`](#{slug(name)})"
        return f"`{name}`"

    def type_of(self, schema: Any, depth: int = 0) -> str:
        """A schema's type in a few words, with links to records."""
        if not isinstance(schema, dict) or depth > 6:
            return "any"
        if isinstance(schema.get("$ref"), str):
            return self.record_link(schema["$ref"])
        if "const" in schema:
            return f"`{json.dumps(schema['const'])}`"
        if isinstance(schema.get("enum"), list):
            return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                kinds = [self.type_of(s, depth + 1) for s in schema[key]]
                return " or ".join(dict.fromkeys(kinds)) or "any"
        if isinstance(schema.get("allOf"), list):
            kinds = [self.type_of(s, depth + 1) for s in schema["allOf"]]
            return " and ".join(dict.fromkeys(kinds)) or "any"
        kind = schema.get("type")
        if isinstance(kind, list):
            return " or ".join(self.type_of({**schema, "type": k}, depth + 1) for k in kind)
        if kind == "array":
            if isinstance(schema.get("prefixItems"), list):
                parts = ", ".join(self.type_of(s, depth + 1) for s in schema["prefixItems"])
                return f"array [{parts}]"
            items = schema.get("items")
            return f"array of {self.type_of(items, depth + 1)}" if items else "array"
        if kind == "object":
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and extra and not schema.get("properties"):
                return f"object of {self.type_of(extra, depth + 1)}"
            return "object"
        if isinstance(kind, str):
            fmt = schema.get("format")
            return f"{kind} ({fmt})" if fmt else kind
        return "any"

    # -- tables -----------------------------------------------------------------------------

    def fields_table(self, schema: dict[str, Any], label: str = "field") -> str:
        schema = self.resolve(schema)
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(properties, dict) or not properties:
            return ""
        required = set(schema.get("required", []))
        rows = [f"| {label} | type | required | default | description |",
                "| --- | --- | --- | --- | --- |"]
        for name, prop in properties.items():
            prop = prop if isinstance(prop, dict) else {}
            rows.append(self._row(name, prop, name in required, prop))
        return "\n".join(rows)

    def parameters_table(self, parameters: list[Any]) -> str:
        rows = ["| parameter | in | type | required | default | description |",
                "| --- | --- | --- | --- | --- | --- |"]
        for parameter in parameters:
            p = self.resolve(parameter)
            if not isinstance(p, dict) or "name" not in p:
                continue
            schema = p.get("schema") if isinstance(p.get("schema"), dict) else {}
            row = self._row(p["name"], schema, bool(p.get("required")), p)
            rows.append(row.replace(" | ", f" | {p.get('in', '')} | ", 1))
        return "\n".join(rows) if len(rows) > 2 else ""

    def _row(self, name: str, schema: dict[str, Any], required: bool,
             described: dict[str, Any]) -> str:
        default = ""
        if not required and "default" in schema:
            default = f"`{json.dumps(schema['default'])}`"
        notes = [str(described.get("description") or schema.get("description") or "")]
        notes += constraints(schema)
        if described.get("example") is not None:
            notes.append(f"e.g. `{described['example']}`")
        text = "; ".join(n for n in notes if n)
        return (f"| `{name}` | {cell(self.type_of(schema))} | {'yes' if required else ''} | "
                f"{cell(default)} | {cell(text)} |")

    # -- sections ---------------------------------------------------------------------------

    def routes(self) -> str:
        groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for path, method, op in operations(self.doc):
            tag = str((op.get("tags") or ["other"])[0])
            groups.setdefault(tag, []).append((path, method, op))
        out: list[str] = []
        for tag, ops in groups.items():
            out.append(f"### {TAG_TITLES.get(tag, tag.replace('_', ' ').capitalize())}")
            out.append("| route | does |\n| --- | --- |")
            out[-1] += "".join(
                f"\n| [`{m.upper()} {p}`](#{slug(f'{m.upper()} {p}')}) | "
                f"{cell(str(op.get('summary', '')))} |" for p, m, op in ops
            )
            out.extend(self.operation(p, m, op) for p, m, op in ops)
        return "\n\n".join(out)

    def operation(self, path: str, method: str, op: dict[str, Any]) -> str:
        title = f"{method.upper()} {path}"
        parts = [f"#### `{title}`"]
        text = " ".join(str(op.get(k, "")).strip() for k in ("summary", "description"))
        if text.strip():
            parts.append(text.strip())
        action = "read" if method in ("get", "head", "options") else "write"
        scopes = op.get("x-gswarm-scopes") or []
        if scopes:  # the route table's resources, as the OpenAPI document carries them
            resources = ", ".join(f"`gswarm:{s.split(':')[1]}`" for s in scopes)
            parts.append(f"Authorizer: {resources}, `{action}`. API key scopes: "
                         + ", ".join(f"`{s}`" for s in scopes) + ".")
        elif self.resources.get(path):
            parts.append(f"Authorizer: `{self.resources[path]}`, `{action}`.")
        table = self.parameters_table(self.parameters(path, op))
        if table:
            parts.append(table)
        body = self.body(op)
        if body:
            parts.append(body)
        parts.append(self.answers(op))
        example = self.example(path, method, op)
        if example:
            parts.append(example)
        return "\n\n".join(parts)

    def body(self, op: dict[str, Any]) -> str:
        request = self.resolve(op.get("requestBody"))
        if not isinstance(request, dict):
            return ""
        content = request.get("content") or {}
        media, spec = next(iter(content.items()), ("", {}))
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            return ""
        head = f"Body ({media}): {self.type_of(schema)}."
        described = self.resolve(schema).get("description") if isinstance(
            self.resolve(schema), dict) else None
        if described:
            head += f" {one_line(str(described))}"
        table = self.fields_table(schema)
        return f"{head}\n\n{table}" if table else head

    def answers(self, op: dict[str, Any]) -> str:
        success, errors = [], []
        for status, answer in (op.get("responses") or {}).items():
            answer = self.resolve(answer) if isinstance(answer, dict) else {}
            if status.isdigit() and int(status) >= 400:
                errors.append(f"`{status}` {self.error_codes(status, answer)}".rstrip())
            else:
                success.append(self.success(status, answer))
        lines = success or ["No success answer in this build: it answers `501 NOT_IMPLEMENTED`."]
        if errors:
            lines.append("Errors: " + "; ".join(errors) + ".")
        return "\n\n".join(lines)

    def success(self, status: str, answer: dict[str, Any]) -> str:
        if status == "101":
            return "Answers `101`: the connection becomes a WebSocket of JSON events."
        content = answer.get("content") or {}
        if not content:
            return f"Answers `{status}` with no body."
        said = []
        for media, spec in content.items():
            schema = self.resolve(spec.get("schema")) if isinstance(spec, dict) else None
            props = schema.get("properties") if isinstance(schema, dict) else None
            if isinstance(props, dict) and "data" in props and "success" in props:
                data = props["data"]
                kind = self.type_of(data) if data else "an object"
                said.append(f"the envelope (`{media}`) whose `data` is {kind}")
            else:
                said.append(f"`{media}`, no envelope")
        return f"Answers `{status}` with " + "; or ".join(said) + "."

    def error_codes(self, status: str, answer: dict[str, Any]) -> str:
        for spec in (answer.get("content") or {}).values():
            schema = self.resolve(spec.get("schema")) if isinstance(spec, dict) else None
            try:
                codes = schema["properties"]["error"]["properties"]["code"]["enum"]
            except (KeyError, TypeError):
                continue
            return ", ".join(f"`{c}`" for c in codes)
        described = str(answer.get("description", ""))
        return ", ".join(f"`{c}`" for c in re.findall(r"\b[A-Z][A-Z_]{2,}\b", described))

    def example(self, path: str, method: str, op: dict[str, Any]) -> str:
        statuses = [s for s in (op.get("responses") or {}) if s.isdigit()]
        if "101" in statuses or not any(int(s) < 400 for s in statuses):
            return ""
        body = self.example_body(path, method, op)
        if body is None:
            return ""
        params = self.parameters(path, op)
        url = re.sub(r"\{(\w+)\}", lambda m: self.path_example(params, m.group(1)), path)
        words = ["curl -fsS"]
        if method not in ("get", "post") or (method == "post" and body is ...):
            words.append(f"-X {method.upper()}")
        words.append('-H "Authorization: token $GSWARM_TOKEN"')
        lines = [" ".join(words) + " \\"]
        if body is not ...:
            text = json.dumps(body).replace("'", "'\\''")
            lines.append(f"     -H \"Content-Type: application/json\" -d '{text}' \\")
        lines.append(f'     "${{GSWARM_URL}}{url.lstrip("/")}"')
        return "```bash\n" + "\n".join(lines) + "\n```"

    def example_body(self, path: str, method: str, op: dict[str, Any]) -> Any:
        """The example's body; `...` for none; None when no honest example can be given."""
        request = self.resolve(op.get("requestBody"))
        if not isinstance(request, dict):
            return ...
        for spec in (request.get("content") or {}).values():
            schema = self.resolve(spec.get("schema")) if isinstance(spec, dict) else None
            if isinstance(schema, dict):
                for given in (schema.get("examples"), [schema.get("example")]):
                    if isinstance(given, list) and given and given[0] is not None:
                        return given[0]
                if (method, path) in self.examples:
                    return self.examples[(method, path)]
                if not schema.get("required"):
                    return {}
        return None

    def parameters(self, path: str, op: dict[str, Any]) -> list[Any]:
        """The operation's parameters, after those its path item gives every method."""
        shared = self.doc.get("paths", {}).get(path, {}).get("parameters") or []
        return [*shared, *(op.get("parameters") or [])]

    def path_example(self, parameters: list[Any], name: str) -> str:
        for parameter in parameters:
            p = self.resolve(parameter)
            if isinstance(p, dict) and p.get("name") == name and p.get("example") is not None:
                return str(p["example"])
        return name.upper()

    def records(self) -> str:
        out = []
        for name in sorted(self.schemas):
            if re.fullmatch(r"Error\d{3}", name):
                continue  # the error envelopes: see the errors table
            schema = self.resolve(self.schemas[name])
            if not isinstance(schema, dict):
                continue
            parts = [f"### {name}"]
            if schema.get("description"):
                parts.append(one_line(str(schema["description"])))
            table = self.fields_table(schema)
            parts.append(table or f"{self.type_of({**schema, 'title': None})}.")
            out.append("\n\n".join(parts))
        return "\n\n".join(out)


def constraints(schema: dict[str, Any]) -> list[str]:
    """A schema's bounds in words (of its non-null branch, for an optional field)."""
    branches = [s for s in schema.get("anyOf", []) if isinstance(s, dict)] or [schema]
    words: list[str] = []
    signs: dict[str, Callable[[Any], str]] = {
        "minimum": lambda v: f">= {v}", "maximum": lambda v: f"<= {v}",
        "exclusiveMinimum": lambda v: f"> {v}", "exclusiveMaximum": lambda v: f"< {v}",
        "minLength": lambda v: "not empty" if v == 1 else f"at least {v} characters",
        "maxLength": lambda v: f"at most {v} characters",
        "minItems": lambda v: f"at least {v} items", "maxItems": lambda v: f"at most {v} items",
        "pattern": lambda v: f"matches `{v}`",
    }
    for branch in branches:
        words += [say(branch[key]) for key, say in signs.items() if key in branch]
    return list(dict.fromkeys(words))


def cell(text: str) -> str:
    """Text that fits in one table cell."""
    return one_line(text).replace("|", "\\|")


def one_line(text: str) -> str:
    return " ".join(text.split())


def slug(title: str) -> str:
    """GitHub's anchor of a heading (headings here are unique, so no `-1` suffixes)."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
