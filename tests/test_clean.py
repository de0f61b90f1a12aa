from __future__ import annotations

from workers.clean import dedupe_paragraphs, html_to_paragraphs, plain_text, sanitize_html

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
