"""Template rendering: var / env_var / secret, types, errors, --vars parsing."""

from __future__ import annotations

import pytest

from airflow_mbt.errors import MBTInputError
from airflow_mbt.project.render import Renderer, TemplateError, parse_call, parse_vars


def r(**kw):
    return Renderer(kw.pop("vars", {}), kw.pop("env", {}), **kw)


@pytest.mark.parametrize("text, expected", [
    ("{{ var('x', 300) }}", 300),
    ("{{ var('x', '300') }}", 300),           # whole template -> YAML scalar type
    ("{{ var('x', 0.5) }}", 0.5),
    ("{{ var('x', true) }}", True),
    ("{{var(\"x\",'a b')}}", "a b"),
    ("  {{ var('x', 'a') }}", "  a"),          # not the whole value: string
    ("pre-{{ var('x', 1) }}-{{ env_var('E', 'e') }}", "pre-1-e"),
    ("no template", "no template"),
    ("{{ var('x', 'it\\'s') }}", "it's"),
    ("{{ var('x', '0123') }}", "0123"),        # not YAML 1.1 octal
    ("{{ var('x', '0') }}", 0),
    ("{{ var('x', '-12') }}", -12),
])
def test_render_defaults(text, expected):
    assert r().render_string(text) == expected


def test_vars_and_env_take_precedence():
    assert r(vars={"x": 7}, env={"E": "from-env"}).render_string("{{ var('x', 1) }}") == 7
    assert r(env={"E": "42"}).render_string("{{ env_var('E', 1) }}") == 42
    assert r(env={"E": "a:b"}).render_string("{{ env_var('E') }}") == "a:b"


def test_secret_is_kept_as_reference():
    assert r().render_string("{{ secret('PG_PASSWORD') }}") == {"$secret": "PG_PASSWORD"}


@pytest.mark.parametrize("text, message", [
    ("{{ secret('S') }}/x", "must be the whole value"),
    ("{{ var('missing') }}", "not set and has no default"),
    ("{{ env_var('MISSING') }}", "not set and has no default"),
    ("{{ nope('x') }}", "unknown template function"),
    ("{{ var(x) }}", "must be a literal"),
    ("{{ var('x', 1, 2) }}", "takes a quoted name"),
    ("{{ var }}", "unknown template parameter"),
    ("{{ var('x' 'y') }}", "expected ',' or ')'"),
    ("{{ var('x', 1) }} {{", "unclosed"),
    ("{{ var('x'", "unclosed"),
])
def test_render_errors(text, message):
    with pytest.raises(TemplateError) as err:
        r().render_string(text)
    assert message in err.value.message


def test_secret_not_allowed_in_pipelines():
    with pytest.raises(TemplateError, match="only allowed in profiles"):
        r(allow_secrets=False).render_string("{{ secret('S') }}")


def test_render_nested_tracks_path_and_used_vars():
    seen = []

    def error_at(path, message, hint):
        seen.append(path)
        return MBTInputError(message)

    renderer = r(vars={"a": 1})
    out = renderer.render({"x": ["{{ var('a') }}", {"y": "{{ var('b', 'z') }}"}]}, error_at)
    assert out == {"x": [1, {"y": "z"}]} and renderer.used_vars == {"a", "b"}
    with pytest.raises(MBTInputError):
        renderer.render({"x": [0, {"y": "{{ var('c') }}"}]}, error_at)
    assert seen == [("x", 1, "y")]


def test_parse_call():
    assert parse_call(" env_var('A', -1.5e3) ") == ("env_var", ["A", -1500.0])
    assert parse_call("var('a', null)") == ("var", ["a", None])


def test_parse_vars():
    assert parse_vars(["a=1", "b=x=y", "c=", "{d: [1, 2], e: no}"]) == {"a": 1, "b": "x=y", "c": "", "d": [1, 2],
                                                                          "e": False}
    for bad in (["novalue"], ["=1"], ["{a: 1"], ["[1, 2]"]):
        with pytest.raises(MBTInputError) as err:
            parse_vars(bad)
        assert err.value.field == "--vars"
