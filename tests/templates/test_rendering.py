from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigurationError, InvalidInput
from core.templates.rendering import (
    Renderer,
    RenderLimits,
    TemplateRenderError,
    TemplateSource,
    choose_locale,
)

SHARED = {
    "charter": (
        "<html><body>{{ content }}\n{% render 'footer', unsubscribe: message.unsubscribe_url %}"
        "</body></html>"
    ),
    "footer": '<p>{{ tenant.name }} · <a href="{{ unsubscribe }}">unsubscribe</a></p>',
    "signature": "{{ tenant.name }} team",
    "text_charter": "{{ content }}\n--\nUnsubscribe: {{ message.unsubscribe_url }}",
}


def context(**customer: object) -> dict[str, object]:
    return {
        "customer": {"first_name": "Zoé", "ext": {"tier": "gold"}, **customer},
        "event": {"line": "T3", "items": [{"name": "Pass"}, {"name": "Ticket"}]},
        "tenant": {"name": "Tram & Bus", "timezone": "Europe/Paris", "locale": "fr-FR"},
        "message": {"unsubscribe_url": "https://relais.test/u?t=1&c=2"},
    }


@pytest.fixture
def renderer() -> Renderer:
    return Renderer(SHARED, html_layout="charter", text_layout="text_charter")


def test_layout_wraps_html_and_partial_is_rendered(renderer: Renderer) -> None:
    message = renderer.render(
        TemplateSource(
            subject="Hello {{ customer.first_name }}",
            text="Hello {{ customer.first_name }}",
            html="<p>Hello {{ customer.first_name }}, tier {{ customer.ext.tier }}</p>",
        ),
        context(),
    )
    assert message.subject == "Hello Zoé"
    assert message.html == (
        "<html><body><p>Hello Zoé, tier gold</p>\n"
        '<p>Tram &amp; Bus · <a href="https://relais.test/u?t=1&amp;c=2">unsubscribe</a></p>'
        "</body></html>"
    )
    assert message.text == "Hello Zoé\n--\nUnsubscribe: https://relais.test/u?t=1&c=2"


def test_include_shares_scope_and_loops_over_event_data(renderer: Renderer) -> None:
    message = renderer.render(
        TemplateSource(
            text="{% for item in event.items %}{{ item.name }};{% endfor %}"
            " {% include 'signature' %}"
        ),
        context(),
    )
    assert message.text.startswith("Pass;Ticket; Tram & Bus team")
    assert message.html is None and message.subject is None


def test_html_escapes_data_but_text_and_subject_do_not(renderer: Renderer) -> None:
    hostile = "<script>alert(1)</script>"
    message = renderer.render(
        TemplateSource(
            subject="{{ customer.first_name }}",
            text="{{ customer.first_name }}",
            html="{{ customer.first_name }}",
        ),
        context(first_name=hostile),
    )
    assert message.subject == hostile
    assert message.text.startswith(hostile)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (message.html or "")
    assert hostile not in (message.html or "")


def test_safe_filter_is_not_available_to_bypass_escaping(renderer: Renderer) -> None:
    with pytest.raises(TemplateRenderError) as caught:
        renderer.render(
            TemplateSource(text="x", html="{{ customer.first_name | safe }}"),
            context(first_name="<b>"),
        )
    assert caught.value.field == "html"


def test_subject_is_one_line(renderer: Renderer) -> None:
    message = renderer.render(
        TemplateSource(subject="Hi {{ customer.first_name }}\n", text="x"),
        context(first_name="Zoé\r\nBcc: victim@example.org"),
    )
    assert message.subject == "Hi Zoé Bcc: victim@example.org"


@pytest.mark.parametrize("field", ["subject", "text", "html"])
def test_undefined_variable_names_variable_part_and_line(renderer: Renderer, field: str) -> None:
    parts = {"subject": "ok", "text": "ok", "html": "ok"}
    parts[field] = "Hello\n{{ customer.frist_name }}"
    with pytest.raises(TemplateRenderError) as caught:
        renderer.render(TemplateSource(**parts), context())
    error = caught.value
    assert error.field == field
    assert "customer.frist_name" in error.message
    assert error.line == 2
    assert isinstance(error, InvalidInput) and error.status == 422


def test_nil_output_is_an_error_unless_defaulted(renderer: Renderer) -> None:
    with pytest.raises(TemplateRenderError, match=r"customer\.nickname"):
        renderer.render(TemplateSource(text="Hi {{ customer.nickname }}"), context(nickname=None))
    message = renderer.render(
        TemplateSource(
            text="Hi {{ customer.nickname | default: 'there' }}"
            "{% if customer.nickname %}!{% endif %}{{ customer.missing | default: '.' }}"
        ),
        context(nickname=None),
    )
    assert message.text.startswith("Hi there.")


def test_undefined_variable_inside_shared_partial_names_it() -> None:
    renderer = Renderer({"footer": "ok\n{{ tenant.adress }}"})
    with pytest.raises(TemplateRenderError) as caught:
        renderer.render(TemplateSource(text="{% render 'footer' %}"), context())
    assert caught.value.template == "footer"
    assert caught.value.line == 2
    assert "tenant.adress" in caught.value.message


def test_unknown_context_namespace_is_refused(renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="campaign"):
        renderer.render(TemplateSource(text="x"), {**context(), "campaign": {}})


def test_loop_limit_is_enforced() -> None:
    renderer = Renderer(limits=RenderLimits(max_loop_iterations=100))
    ok = renderer.render(TemplateSource(text="{% for i in (1..100) %}.{% endfor %}"), {})
    assert ok.text == "." * 100
    with pytest.raises(TemplateRenderError, match="loop iteration limit") as caught:
        renderer.render(TemplateSource(text="{% for i in (1..1000000000) %}.{% endfor %}"), {})
    assert caught.value.field == "text"
    nested = "{% for i in (1..20) %}{% for j in (1..20) %}.{% endfor %}{% endfor %}"
    with pytest.raises(TemplateRenderError, match="loop iteration limit"):
        renderer.render(TemplateSource(text=nested), {})


def test_huge_range_cannot_be_materialised_by_a_filter() -> None:
    renderer = Renderer(limits=RenderLimits(max_loop_iterations=100))
    with pytest.raises(TemplateRenderError, match="join"):
        renderer.render(TemplateSource(text="{{ (1..1000000000) | join: ',' }}"), {})


def test_output_limit_stops_exponential_growth() -> None:
    renderer = Renderer(limits=RenderLimits(max_output_bytes=10_000))
    doubling = (
        "{% assign s = 'aaaaaaaaaa' %}"
        "{% for i in (1..30) %}{% assign s = s | replace: 'a', s %}{% endfor %}{{ s }}"
    )
    with pytest.raises(TemplateRenderError, match="output limit"):
        renderer.render(TemplateSource(text=doubling), {})
    with pytest.raises(TemplateRenderError, match="output stream limit"):
        renderer.render(TemplateSource(text="{% for i in (1..5000) %}abcdef{% endfor %}"), {})


def test_recursive_partial_hits_render_depth() -> None:
    renderer = Renderer({"loop": "{% render 'loop' %}"}, limits=RenderLimits(max_render_depth=5))
    with pytest.raises(TemplateRenderError, match="context depth") as caught:
        renderer.render(TemplateSource(text="start {% render 'loop' %}"), {})
    assert caught.value.template == "loop"


def test_oversized_source_is_refused_before_parsing() -> None:
    renderer = Renderer(limits=RenderLimits(max_source_chars=10))
    with pytest.raises(TemplateRenderError, match="longer than 10"):
        renderer.render(TemplateSource(text="x" * 11), {})
    assert [p.code for p in renderer.validate(TemplateSource(text="x" * 11))] == ["too_large"]


def test_no_filesystem_access() -> None:
    with pytest.raises(TemplateRenderError, match="does not exist"):
        Renderer().render(TemplateSource(text="{% include '/etc/passwd' %}"), {})


def test_validate_reports_syntax_error_with_line(renderer: Renderer) -> None:
    problems = renderer.validate(
        TemplateSource(text="Hello\n{{ customer.first_name }}\n{% if customer.vip %}VIP")
    )
    assert len(problems) == 1
    assert problems[0].field == "text" and problems[0].code == "syntax"
    assert problems[0].line == 3
    broken = renderer.validate(TemplateSource(text="ok", html="a\nb\n{% endfor %}"))
    assert [(p.field, p.code, p.line) for p in broken] == [("html", "syntax", 3)]


def test_validate_reports_unknown_partial_filter_namespace_and_field(renderer: Renderer) -> None:
    source = TemplateSource(
        subject="{{ promo_code }}",
        text="{% render 'nope' %}{{ customer.first_name | shout }}",
        html="{{ customer.first_name }} {{ customer.ext.shoe_size }}{% render 'footer' %}",
    )
    known = {"customer.first_name", "tenant.name"}
    problems = renderer.validate(source, is_known_variable=known.__contains__)
    summary = {(p.field, p.code, p.variable or p.message) for p in problems}
    assert summary == {
        ("subject", "unknown_namespace", "promo_code"),
        ("text", "missing_partial", "partial 'nope' does not exist"),
        ("text", "unknown_filter", "unknown filter 'shout'"),
        ("html", "unknown_variable", "customer.ext.shoe_size"),
        # the footer partial expects `unsubscribe` to be passed by whoever renders it
        ("html", "unknown_namespace", "unsubscribe"),
    }
    assert renderer.validate(TemplateSource(text="{{ customer.first_name }}")) == []


def test_variables_lists_paths_with_partials_and_skips_locals(renderer: Renderer) -> None:
    uses = renderer.variables(
        TemplateSource(
            text=(
                "{% assign n = customer.first_name %}{{ n }}\n"
                "{% for item in event.items %}{{ item.name }}{{ forloop.index }}{% endfor %}"
                "{{ event.items[0].price }}{% include 'signature' %}"
            )
        )
    )
    found = {(use.path, use.dotted, use.line, use.template) for use in uses}
    assert found == {
        ("customer.first_name", "customer.first_name", 1, None),
        ("event.items", "event.items", 2, None),
        ("event.items[0].price", "event.items.price", 2, None),
        ("tenant.name", "tenant.name", 1, "signature"),
    }


def test_shared_templates_are_checked_when_the_renderer_is_built() -> None:
    with pytest.raises(ConfigurationError, match="layout must print"):
        Renderer({"charter": "<html></html>"}, html_layout="charter")
    with pytest.raises(ConfigurationError, match="not among the shared"):
        Renderer({}, text_layout="missing")
    with pytest.raises(ConfigurationError, match="broken"):
        Renderer({"broken": "{% if %}"})


# -- choose_locale -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("customer", "tenant", "hq", "available", "expected"),
    [
        ("fr", "en", "en", ["en", "fr-FR"], "fr-FR"),
        ("fr-CA", "en", "en", ["en", "fr"], "fr"),
        ("FR_fr", "en", "en", ["en", "fr-FR"], "fr-FR"),
        ("fr-CA", "en", "en", ["en", "fr-BE", "fr-FR"], "fr-FR"),
        ("fr-CA", "en", "en", ["en", "fr-BE"], "fr-BE"),
        ("de", "ar-MA", "fr", ["fr", "ar"], "ar"),
        (None, "ar-MA", "fr", ["fr", "en"], "fr"),
        ("", "xx", "fr", ["fr-FR", "en"], "fr-FR"),
        ("not a tag!", "en-GB", "fr", ["fr", "en-US"], "en-US"),
        ("zh-Hant-TW", "en", "en", ["zh-Hans", "en"], "en"),
        ("zh-Hant-TW", "en", "en", ["zh-Hans", "zh-Hant", "en"], "zh-Hant"),
        ("ja", "ko", "it", ["pt-BR", "es"], "pt-BR"),
    ],
)
def test_choose_locale(
    customer: str | None, tenant: str, hq: str, available: list[str], expected: str
) -> None:
    assert choose_locale(customer, tenant, hq, available) == expected


def test_choose_locale_needs_something_available() -> None:
    with pytest.raises(ValueError):
        choose_locale("fr", "fr", "en", [])


_languages = st.sampled_from(["fr", "en", "ar", "zh", "de", "es"])
_scripts = st.sampled_from(["", "-Latn", "-Hans", "-Hant", "-Arab"])
_regions = st.sampled_from(["", "-FR", "-MA", "-CA", "-GB", "-TW", "-419"])


@st.composite
def locale_tags(draw: st.DrawFn) -> str:
    tag = draw(_languages) + draw(_scripts) + draw(_regions)
    tag = tag.replace("-", draw(st.sampled_from(["-", "_"])))
    return draw(st.sampled_from([tag, tag.lower(), tag.upper()]))


def _key(tag: str) -> str:
    return tag.replace("_", "-").lower()


_available = st.lists(locale_tags(), min_size=1, max_size=6, unique_by=_key)
_preference = st.none() | locale_tags() | st.text(max_size=5)


@given(_preference, locale_tags(), locale_tags(), _available)
def test_choose_locale_always_returns_an_available_locale(
    customer: str | None, tenant: str, hq: str, available: list[str]
) -> None:
    chosen = choose_locale(customer, tenant, hq, available)
    assert chosen in available
    # rendering in the chosen locale and asking again gives the same answer
    assert choose_locale(chosen, tenant, hq, available) == chosen


@given(locale_tags(), locale_tags(), _available)
def test_available_customer_language_always_wins(
    tenant: str, hq: str, available: list[str]
) -> None:
    for tag in available:
        assert choose_locale(tag.swapcase(), tenant, hq, available) == tag


@given(locale_tags(), locale_tags(), _available)
def test_missing_customer_language_falls_back_to_tenant_then_hq(
    tenant: str, hq: str, available: list[str]
) -> None:
    assert choose_locale(None, tenant, hq, available) == choose_locale(
        tenant, tenant, hq, available
    )
    if not any(_key(tag).split("-")[0] == _key(tenant).split("-")[0] for tag in available):
        assert choose_locale(None, tenant, hq, available) == choose_locale(hq, hq, hq, available)
