from __future__ import annotations

from typing import Any

import pytest

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


# --- elements HTML parses as raw text (tests/data/defects/blogger-raw-text.xml) ---------

RAW_TEXT_FEED = "blogger-raw-text.xml"


def _raw_text_items(iframe_hosts: frozenset[str] = frozenset()) -> list[Any]:
    from ingest.models import FeedSpec
    from tests.conftest import DATA_DIR
    from workers.normalize.record import NormalizeOptions, normalize_entry
    from workers.parse import parse_feed_bytes

    url = "https://gardennotes.blogspot.example/feeds/posts/default"
    parsed: Any = parse_feed_bytes((DATA_DIR / "defects" / RAW_TEXT_FEED).read_bytes(), {}, url)
    spec = FeedSpec("blog", url)
    options = NormalizeOptions(iframe_hosts=iframe_hosts)
    return [normalize_entry(e, parsed["feed"], spec, url, "2026-01-01T00:00:00Z", options)
            for e in parsed["entries"]]


def test_a_self_closed_iframe_leaves_no_markup_behind_as_text() -> None:
    post = _raw_text_items()[0]
    assert post.content_text == "Cut above an outward-facing bud."  # was "...\n\n</p>"
    assert "&lt;" not in post.content_html and "iframe" not in post.content_html


def test_removed_raw_text_elements_take_their_content_with_them() -> None:
    post = _raw_text_items()[1]
    assert post.content_text.split("\n\n") == [
        "Seed trays are cheap.", "Frames are gone.", "Code", "follows.", "Counter here.", "Last words."]
    for leftover in ("&lt;", "no plugin", "frames text", "listing", "stats.example", "all the rest"):
        assert leftover not in post.content_html, leftover
        assert leftover.replace("&lt;", "<") not in post.content_text, leftover


def test_an_allowed_iframe_is_kept_but_its_raw_text_is_not() -> None:
    post = _raw_text_items(frozenset({"www.youtube.com"}))[0]
    assert post.content_text == "Cut above an outward-facing bud."
    assert 'src="https://www.youtube.com/embed/r0ses"' in post.content_html
    assert post.content_html.endswith("></iframe></p>")  # empty: nothing of "</p>" inside
    assert "&lt;" not in post.content_html


@pytest.mark.parametrize("tag", ["iframe", "noembed", "noframes", "noscript", "xmp", "textarea", "title"])
def test_each_raw_text_element_is_removed_with_its_content(tag: str) -> None:
    fragment = f'<p>Before <{tag}>secret &lt;b&gt; </p><b>bold</b></{tag}>after.</p>'
    for hosts in (frozenset(), frozenset({"www.youtube.com"})):
        out = sanitize_html(fragment, "https://ex.com/", hosts)
        assert "secret" not in out and "bold" not in out and "&lt;" not in out, (tag, out)
        # xmp is a block: it ends the paragraph it opens in (as in a browser)
        expected = ["Before", "after."] if tag == "xmp" else ["Before after."]
        assert html_to_paragraphs(out) == expected, (tag, out)
