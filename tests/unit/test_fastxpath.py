"""monitor.fastxpath: trafilatura's XPath expressions rewritten select the same elements, in the same order."""

from __future__ import annotations

import importlib
import json
from copy import copy
from pathlib import Path

import pytest
import trafilatura.xpaths
from lxml import html as lxml_html
from lxml.etree import XPath
from trafilatura.htmlprocessing import convert_tags, tree_cleaning
from trafilatura.settings import Extractor

from monitor.extract import decode_body, parse_html
from monitor.fastxpath import REGEXP_NS, faster, faster_xpaths, rewrite, swaps

NS = {"re": REGEXP_NS}


def test_a_regex_test_is_asked_only_where_its_attribute_is():
    assert rewrite(".//*[re:test(@class, 'nav')]") == ".//*[(@class and re:test(@class, 'nav'))]"
    assert rewrite(".//*[re:test(@id|@class, '^comment', 'i')]") == \
        ".//*[((@id or @class) and re:test(@id|@class, '^comment', 'i'))]"


@pytest.mark.parametrize("path", [
    ".//*[re:test(@class, 'a*')]",  # matches '': true on an element without a class, so no guard
    ".//*[re:test(@class, '^$|x')]",
    ".//*[re:test(@class, 'NAV', 'x')]",  # flags lxml does not know: left to lxml
    ".//*[self::div or self::p][@class][1]",  # a position counts among the siblings of every name
    ".//*[self::div or self::p][position() < 3]",
    ".//*[self::div or self::p][@id][last()]",
])
def test_what_could_change_the_answer_is_left_as_it_is(path: str):
    assert rewrite(path) == path


def test_element_names_tested_in_a_predicate_become_one_walk_each():
    assert rewrite(".//*[self::div or self::p][contains(@class, 'x')][not(.//h1)]") == \
        ".//div[contains(@class, 'x')][not(.//h1)] | .//p[contains(@class, 'x')][not(.//h1)]"
    # a path after the step runs from each element found, whichever walk found it; its positions are its own
    assert rewrite("//*[self::li or self::span][@class='x']//a[1]") == "//li[@class='x']//a[1] | //span[@class='x']//a[1]"
    # each branch of a union on its own; a bar inside a predicate or a string is not a branch
    assert rewrite(".//*[self::a or self::b][@x|@y] | .//*[self::c or self::d][@z='|']") == \
        ".//a[@x|@y] | .//b[@x|@y] | .//c[@z='|'] | .//d[@z='|']"
    assert rewrite("(.//*[self::a or self::b])[1] | .//c") == "(.//*[self::a or self::b])[1] | .//c"


def test_expressions_that_can_return_attributes_or_text_are_not_replaced():
    assert faster(XPath(".//*[self::div or self::p][@class]/@class")) is None
    assert faster(XPath(".//*[self::div or self::p][@class]/text()")) is None
    assert faster(XPath(".//*[self::div or self::p][@class]")) is not None
    assert faster(XPath(".//aside")) is None  # nothing to rewrite


EDGE_PAGE = """<html><body>
<div id="comment-1" class="x">a</div><div class="comment-list" id="z">b</div><div class="">c</div><div id="">d</div>
<p class="nav share">e</p><span style="display:none" id="hidden-thing">f</span><section class="Cookie-Banner">g</section>
<div><div class="mvp-post-add-box"><h1>h</h1></div><div class="infinite-scroll"><p>i</p></div></div>
<ul class="comments"><li>j</li></ul><ol id="commentary">k</ol><details class="comment-thread">l</details>
<article class="article-body"><div class="post-content">m</div></article><aside class="sidebar">n</aside>
<div class="caption"><p id="caption-2" class="bottom">o</p></div><div class="link border">p</div>
<div style="border: 1px" class="teaser Teaser">q</div><span class="byline author-name">r</span>
<div><div class="post">s</div><section class="entry">t</section></div><div id="comments-area">u</div><p id="social-nav">v</p>
</body></html>"""


def _expressions() -> list[tuple[XPath, XPath]]:
    return [(own, fast) for _holder, _key, own, fast in swaps().places]


def _trees(page: str) -> list:
    """The page as trafilatura first sees it, and after its cleaning and tag conversion (<list>, <item>, <head>: what
    its later expressions read)."""
    tree = parse_html(page)
    assert tree is not None
    options = Extractor(output_format="python", with_metadata=True, comments=False, tables=True, dedup=False)
    return [tree, convert_tags(tree_cleaning(copy(tree), options), options)]


def _differ(pages: list[str]) -> list[tuple[int, str]]:
    differ = []
    for number, page in enumerate(pages):
        for tree in _trees(page):
            for own, fast in _expressions():
                if fast(tree) != own(tree):
                    differ.append((number, own.path.strip()[:80]))
    return differ


def test_trafilatura_expressions_are_rewritten():
    rewritten = {own.path for own, _fast in _expressions()}
    assert len(rewritten) >= 20  # 28 with trafilatura 2.3.1: a new trafilatura that changed them all shows here
    assert all(own.path != fast.path for own, fast in _expressions())


def test_edge_cases_select_the_same_elements():
    tree = _trees(EDGE_PAGE)[0]
    hits = sum(len(own(tree)) for own, _fast in _expressions())
    assert hits >= 15  # the page reaches the expressions: a comparison of empty answers would prove nothing
    assert _differ([EDGE_PAGE]) == []


def _corpus_pages(corpus: Path) -> list[str]:
    pages = json.loads((corpus / "pages" / "manifest.json").read_text())["pages"]
    return [decode_body((corpus / "pages" / page["file"]).read_bytes(), content_type="text/html") for page in pages]


def test_corpus_pages_select_the_same_elements(corpus: Path):
    pages = _corpus_pages(corpus)
    assert len(pages) >= 50 and _differ(pages) == []


def test_the_whole_corpus_selects_the_same_elements(full_corpus: Path):
    pages = _corpus_pages(full_corpus)
    assert len(pages) >= 140 and _differ(pages) == []


def test_the_twins_are_swapped_in_only_inside_the_block():
    baseline = importlib.import_module("trafilatura.baseline")  # (trafilatura.baseline is also a function's name)
    own = list(trafilatura.xpaths.OVERALL_DISCARD_XPATH)
    clean = baseline.BASIC_CLEAN_XPATH
    with faster_xpaths():
        assert trafilatura.xpaths.OVERALL_DISCARD_XPATH[0] is not own[0]
        assert baseline.BASIC_CLEAN_XPATH is not clean
        assert trafilatura.settings.BASIC_CLEAN_XPATH is baseline.BASIC_CLEAN_XPATH
    assert trafilatura.xpaths.OVERALL_DISCARD_XPATH == own and baseline.BASIC_CLEAN_XPATH is clean
    with pytest.raises(ZeroDivisionError), faster_xpaths():
        raise ZeroDivisionError
    assert trafilatura.xpaths.OVERALL_DISCARD_XPATH == own and baseline.BASIC_CLEAN_XPATH is clean


def test_the_rewritten_tests_see_attribute_order_as_xpath_does():
    """`re:test(@id|@class, R)` reads the attribute written first; the guard keeps that."""
    own = XPath(".//*[re:test(@id|@class, '^nav')]", namespaces=NS)
    fast = faster(own)
    assert fast is not None
    tree = lxml_html.fromstring('<div><p id="x" class="nav">a</p><p class="nav" id="x">b</p><p>c</p></div>')
    assert [el.text for el in fast(tree)] == [el.text for el in own(tree)] == ["b"]
