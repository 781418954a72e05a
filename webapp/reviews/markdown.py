"""Comments' Markdown to safe HTML: `markdown` renders, `nh3` (ammonia) keeps only the tags and
attributes below, so raw HTML, event handlers, styles and `javascript:` (or `data:`) links never
reach the page. The Markdown parser is also told to read no raw HTML (its HTML block and inline
HTML processors are removed), so HTML in a comment shows as the text that was written."""

from __future__ import annotations

import markdown as markdown_lib
import nh3

ALLOWED_TAGS = {"p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a", "h3", "h4", "h5",
                "h6", "hr"}
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> str:
    """Safe HTML for a comment's Markdown body."""
    md = markdown_lib.Markdown(extensions=["fenced_code", "sane_lists"], output_format="html")
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    rendered = md.convert(text)
    return nh3.clean(rendered, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                     link_rel="noopener noreferrer nofollow", strip_comments=True)
