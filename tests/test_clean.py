from __future__ import annotations

from workers.normalize.clean import dedupe_paragraphs, html_to_paragraphs, plain_text, sanitize_html

HOSTILE = (
    '<p onclick="steal()">Hi <b>there</b></p><script>alert(1)</script>'
    '<style>p{}</style><iframe src="https://evil.example/"></iframe>'
    '<a href="javascript:alert(1)">js</a><img src="data:image/png;base64,AAAA" onerror="x()">'
    '<img src="/img/a.png"><a href="story.html">rel</a>'
)


def test_sanitize_removes_scripts_handlers_and_bad_urls() -> None:
    out = sanitize_html(HOSTILE, "https://ex.com/dir/page")
    lowered = out.lower()
    for bad in ("<script", "alert(", "<style", "<iframe", "onclick", "onerror", "javascript:", "data:"):
        assert bad not in lowered, bad
    assert 'src="https://ex.com/img/a.png"' in out
    assert 'href="https://ex.com/dir/story.html"' in out


def test_paragraphs_from_blocks_and_double_breaks() -> None:
    html = "<div><p>One &amp; <i>two</i></p>\n<p>  Three\n   four </p>Five<br>six<br><br>Seven</div>"
    assert html_to_paragraphs(html) == ["One & two", "Three four", "Five six", "Seven"]


def test_plain_text_without_markup_is_collapsed() -> None:
    assert plain_text("  a \n b\t c ") == "a b c"
    assert plain_text("<b>A</b> &amp; B") == "A & B"
    assert plain_text(None) == ""


def test_exact_repeats_are_dropped_in_order() -> None:
    assert dedupe_paragraphs(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


EMBEDS = (
    '<p>Watch:</p><iframe src="https://www.youtube.com/embed/G2dGWH90aew" width="560" '
    'onload="x()" allowfullscreen></iframe><iframe src="https://evil.example/x"></iframe>'
    '<iframe src="http://www.youtube.com/embed/plain-http"></iframe>'
)


def test_iframes_are_removed_unless_their_host_is_allowed() -> None:
    assert "iframe" not in sanitize_html(EMBEDS, "https://ex.com/")
    kept = sanitize_html(EMBEDS, "https://ex.com/", frozenset({"www.youtube.com"}))
    assert kept.count("<iframe") == 1
    assert 'src="https://www.youtube.com/embed/G2dGWH90aew"' in kept
    assert "sandbox=" in kept and "onload" not in kept
    assert "evil.example" not in kept and "plain-http" not in kept


def test_allowed_iframe_hosts_setting_reaches_the_normalizer() -> None:
    from ingest.models import FeedSpec
    from ingest.settings import Settings
    from workers.normalize.record import NormalizeOptions, normalize_entry

    options = NormalizeOptions.from_settings(
        Settings(allowed_iframe_hosts=" www.youtube.com, player.vimeo.com ,"))
    assert options.iframe_hosts == {"www.youtube.com", "player.vimeo.com"}
    entry = {"content": [{"type": "text/html", "value": EMBEDS}]}
    spec = FeedSpec("f", "https://ex.com/feed")
    with_embed = normalize_entry(entry, {}, spec, spec.url, "2026-01-01T00:00:00Z", options)
    without = normalize_entry(entry, {}, spec, spec.url, "2026-01-01T00:00:00Z")
    assert "<iframe" in with_embed.content_html and "<iframe" not in without.content_html
    assert with_embed.content_text == without.content_text == "Watch:"


def test_mojibake_is_repaired_and_control_characters_cannot_reach_the_record() -> None:
    from workers.normalize.clean import fix_mojibake

    assert fix_mojibake("SchÃ¶ne GrÃ¼ÃŸe â€“ KÃ¶ln") == "Schöne Grüße – Köln"
    assert fix_mojibake("café–bar, déjà vu") == "café–bar, déjà vu"  # clean text untouched
    assert fix_mojibake("a\x0cb\x00c") == "a bc"  # ftfy drops NUL; a form feed is a space
