"""The extractive answer: what it quotes (a colon's line, issue 15 item 14) and in which order (item 15)."""

from __future__ import annotations

from pagesight.pipelines.answer import ExtractiveGenerator, _passages, resolve_citations
from pagesight.types import Hit

FAQ_PAGE = """8.5
How can I find out what package produced a particular file?
To identify the package that produced the file named foo execute either:
• dpkg --search foo
This searches for foo in installed packages. (This is (currently) equivalent to searching all of the
files having the file extension of .list in the directory /var/lib/dpkg/info/.)
A faster alternative to this is the dlocate tool.
"""


def hit(name: str, page: int, text: str, score: float) -> Hit:
    return Hit(f"{name}-{page}", f"/docs/{name}", page, text, None, 0, 0, "0" * 64, score)


def test_a_sentence_ending_with_a_colon_is_quoted_with_the_line_it_introduces() -> None:
    passages = _passages(FAQ_PAGE)
    intro = [p for p in passages if p.startswith("To identify the package")]
    assert intro and all("• dpkg --search foo" in p for p in intro)
    assert not any(p.endswith("execute either:") for p in passages)


def test_what_follows_is_taken_across_a_paragraph_break_and_a_colon_inside_it() -> None:
    text = (
        "The flow of this resolution is the following.\n\n"
        '1. The "/etc/nsswitch.conf" file with stanza like "hosts: files dns" dictates the order.\n'
        "2. The files method is invoked first."
    )
    joined = [p for p in _passages(text) if p.startswith("The flow of this resolution")]
    assert joined and all('"hosts: files dns" dictates the order.' in p for p in joined)


def test_the_extractive_answer_contains_the_command_after_the_colon(encoder) -> None:
    page = hit("debian-faq.en.pdf", 47, FAQ_PAGE, 0.8)
    text = ExtractiveGenerator(encoder).generate("How do I find out which package a file came from?", [page])
    assert "dpkg --search foo" in text
    assert text.count("[debian-faq.en.pdf p.47]") == 2


def test_quotes_follow_the_page_scores_best_page_first(encoder) -> None:
    """The lower page's passage matches the question better, but the top page is quoted first."""
    question = "how do I restart the network service"
    top = hit(
        "top.pdf", 3, "Network interfaces are described in the interfaces file under /etc/network.", 0.9
    )
    lower = hit(
        "lower.pdf", 5, "To restart the network service, run systemctl restart networking as root.", 0.6
    )
    generator = ExtractiveGenerator(encoder, page_weight=0.0)  # rank passages by their text alone
    text = generator.generate(question, [top, lower])
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("[top.pdf p.3]") and lines[1].endswith("[lower.pdf p.5]")
    # the passage scores do put the lower page's sentence first: only the final order is by page
    scores = generator._similarity(question, [top.text, lower.text])
    assert scores[1] > scores[0]
    answer = resolve_citations(question, text, [top, lower])
    assert [c.page for c in answer.citations] == [3, 5]


def test_the_web_app_lists_cited_pages_by_score() -> None:
    from pagesight.ui.app import _citations_markdown
    from pagesight.ui.state import AskStep

    top, lower = hit("top.pdf", 3, "a", 0.9), hit("lower.pdf", 5, "b", 0.6)
    text = "“b” [lower.pdf p.5]\n“a” [top.pdf p.3]"  # a generator that cites the lower page first
    markdown = _citations_markdown(AskStep(text, [top, lower], resolve_citations("q", text, [top, lower])))
    assert markdown.index("top.pdf p.3") < markdown.index("lower.pdf p.5")
