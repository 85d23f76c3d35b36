"""The docs stay true and self-contained.

- docs/api.md is exactly what the generator makes from the route table and docs/api.template.md
  (regenerate with `make docs` when this fails);
- every request body the reference shows is one its route accepts;
- every relative link in README.md and docs/*.md points to a file inside the repository (a
  clone stands alone), and every `#anchor` to a heading of the file it names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gswarm_jupyter.server import apidoc
from gswarm_jupyter.server.handlers import all_routes

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_api_md_is_what_make_docs_generates():
    made = apidoc.render(apidoc.TEMPLATE.read_text(), apidoc.document(), apidoc.values(),
                         apidoc.authorizer_resources())
    committed = (ROOT / "docs" / "api.md").read_text()
    assert committed == made, (
        "docs/api.md is out of date with the route table or docs/api.template.md: run "
        "`make docs` (python -m gswarm_jupyter.server.apidoc > docs/api.md) and commit it"
    )


def test_the_reference_covers_every_route_and_method():
    text = (ROOT / "docs" / "api.md").read_text()
    for route in all_routes():
        for method in route.ops:
            assert f"#### `{method.upper()} {route.path}`" in text


@pytest.mark.parametrize("key", sorted(apidoc.BODY_EXAMPLES), ids=lambda k: f"{k[0]} {k[1]}")
def test_each_example_body_is_accepted_by_its_route(key):
    method, path = key
    route = next((r for r in all_routes() if r.path == path), None)
    assert route is not None and method in route.ops, f"no route {method.upper()} {path}"
    body = route.ops[method].body
    assert body is not None, f"{method.upper()} {path} takes no body"
    body.model_validate(apidoc.BODY_EXAMPLES[key])


def test_every_error_code_has_its_line():
    from gswarm_jupyter.core.errors import ERRORS_BY_CODE

    table = apidoc.errors_table({c: cls.status for c, cls in ERRORS_BY_CODE.items()})
    for code, cls in ERRORS_BY_CODE.items():
        assert f"| `{code}` | {cls.status} |" in table
    with pytest.raises(KeyError, match="NEW_CODE"):
        apidoc.errors_table({"NEW_CODE": 418})


# -- links ----------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?\s*\)")
DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def links(text: str) -> list[str]:
    body = prose(text)
    return [*LINK.findall(body), *IMAGE.findall(body), *DEFINITION.findall(body)]


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (repeats numbered -1, -2, ...)."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose_keeping_code(text), re.M):
        base = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def prose_keeping_code(text: str) -> str:
    """The text without fenced code blocks (a `# comment` there is no heading)."""
    return re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(doc):
    assert doc.exists()
    problems = []
    for target in links(doc.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # http:, https:, mailto: ... are not files of the repository
        path_part, _, anchor = target.partition("#")
        file = (doc.parent / path_part).resolve() if path_part else doc
        if ROOT not in (file, *file.parents):
            problems.append(f"{target}: outside the repository")
        elif not file.exists():
            problems.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            problems.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not problems, f"{doc.relative_to(ROOT)}: " + "; ".join(problems)


def test_the_link_check_catches_what_it_should(tmp_path):
    text = "[a](../shared/API.md) `[not](a-link)` [b](#nowhere)\n# A heading\n[c](#a-heading)"
    assert links(text) == ["../shared/API.md", "#nowhere", "#a-heading"]
    assert anchors(text) == {"a-heading"}
    assert anchors("## `GET /x/{y}`\n## Same\n## Same") == {"get-xy", "same", "same-1"}


def test_the_generator_reads_richer_documents_than_ours():
    """Shared parameters, bodies and answers by `$ref`, oneOf/allOf, tuples, maps, examples."""
    doc = {
        "paths": {"/x/{id}": {
            "parameters": [{"$ref": "#/components/parameters/Id"}],
            "post": {
                "summary": "Make an x", "description": "Longer words.", "tags": ["things"],
                "requestBody": {"$ref": "#/components/requestBodies/Make"},
                "responses": {
                    "201": {"$ref": "#/components/responses/Made"},
                    "418": {"description": "Error envelope: TEAPOT"},
                },
            },
        }},
        "components": {
            "parameters": {"Id": {"name": "id", "in": "path", "required": True,
                                  "schema": {"type": "string"}, "example": "x1"}},
            "requestBodies": {"Make": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Make"}}}}},
            "responses": {"Made": {"description": "made", "content": {"application/json": {
                "schema": {"properties": {"success": {}, "data": {
                    "$ref": "#/components/schemas/Thing"}}}}}}},
            "schemas": {
                "Make": {"type": "object", "required": ["kind"], "examples": [{"kind": "a"}],
                         "properties": {
                             "kind": {"oneOf": [{"const": "a"}, {"const": "b"}]},
                             "pair": {"type": "array", "prefixItems": [{"type": "integer"},
                                                                       {"type": "string"}]},
                             "tags": {"type": "object",
                                      "additionalProperties": {"type": "string"}},
                             "base": {"allOf": [{"$ref": "#/components/schemas/Thing"}]},
                             "loop": {"$ref": "#/components/schemas/Missing"},
                         }},
                "Thing": {"type": "object", "description": "A thing.",
                          "properties": {"id": {"type": "string", "pattern": "^x\\d+|y$"}}},
                "Level": {"type": "string", "enum": ["low", "high"]},
            },
        },
    }
    text = apidoc.render("{{routes}}\n{{records}}\n{{unserved}}", doc, {}, {"/x/{id}": "r:x"})
    assert "#### `POST /x/{id}`" in text and "Make an x Longer words." in text
    assert "| `id` | path | string | yes |" in text and "Authorizer: `r:x`, `write`." in text
    assert "one of" not in text.split("| `kind` |")[1].split("\n")[0]  # oneOf of consts
    assert '`"a"` or `"b"`' in text and "array [integer, string]" in text
    assert "object of string" in text and "`Missing`" in text
    assert "Answers `201` with the envelope (`application/json`) whose `data` is" in text
    assert "`418` `TEAPOT`" in text
    assert "-d '{\"kind\": \"a\"}'" in text and '"${GSWARM_URL}x/x1"' in text
    assert "matches `^x\\d+\\|y$`" in text  # a | in a table cell is escaped
    assert "### Level" in text and '`"low"`' in text
    with pytest.raises(KeyError, match="nothing"):
        apidoc.render("{{nothing}}", doc, {})
