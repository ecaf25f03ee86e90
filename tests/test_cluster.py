"""Index.cluster and ``pagesight cluster`` (issue 16 item 7) on a generated three-topic PDF, real MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pagesight import Index
from pagesight.cli import main
from pagesight.errors import ConfigurationError
from tests.pipelines.conftest import write_pdf

TOPICS = {
    "garden": [
        "Tomato seedlings need full sun; water the tomato plants at the roots every morning.",
        "Turn the compost heap every two weeks so the compost stays warm for the garden beds.",
        "Mulch the vegetable garden with straw to keep the soil moist and the weeds down.",
        "Prune the tomato side shoots and tie the plants to stakes in the garden.",
    ],
    "network": [
        "Open port 22 in the firewall so that ssh connections reach the server.",
        "Configure a static IP address for the network interface and restart networking.",
        "The firewall drops packets from unknown hosts; add an nftables rule for the ssh port.",
        "Check the network route and the DNS server when the host cannot reach the internet.",
    ],
    "baking": [
        "Knead the bread dough for ten minutes, then let the dough rise for an hour.",
        "Preheat the oven to 220 degrees and bake the bread until the crust is brown.",
        "Mix flour, yeast, salt and water into a dough; the yeast makes the bread rise.",
        "Let the baked bread cool on a rack before you slice the loaf.",
    ],
}


@pytest.fixture(scope="module")
def topics_pdf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, str]]:
    pages: list[str | None] = []
    topic_of: dict[int, str] = {}
    for i in range(4):  # interleaved, so page order says nothing about the topic
        for name, texts in TOPICS.items():
            pages.append(texts[i])
            topic_of[len(pages)] = name
    return write_pdf(tmp_path_factory.mktemp("cluster") / "mixed.pdf", pages), topic_of


@pytest.mark.parametrize("profile", ["offline", "offline-late"])
def test_topics_separate_and_are_named_by_their_terms(tmp_path, topics_pdf, profile) -> None:
    pdf, topic_of = topics_pdf
    with Index.create(tmp_path / "store", profile=profile) as index:
        assert not index.add([pdf]).failed
        clusters = index.cluster(3)
    assert [len(c.pages) for c in clusters] == [4, 4, 4]
    assert sorted({topic_of[h.page] for h in c.pages}.pop() for c in clusters) == sorted(TOPICS)
    for c in clusters:
        (topic,) = {topic_of[h.page] for h in c.pages}  # one topic per cluster
        expected = {"garden": {"tomato", "garden", "compost"}, "network": {"ssh", "network", "firewal"}}.get(
            topic, {"bread", "dough", "bake"}
        )
        assert expected & set(c.terms), (topic, c.terms)
        assert [h.score for h in c.pages] == sorted((h.score for h in c.pages), reverse=True)
        assert c.label == clusters.index(c)


def test_cli_prints_clusters_and_json(tmp_path, topics_pdf, capsys) -> None:
    pdf, topic_of = topics_pdf
    with Index.create(tmp_path / "store", profile="offline") as index:
        index.add([pdf])
    assert main(["cluster", "-n", "3", "--store", str(tmp_path / "store"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sorted(len(c["pages"]) for c in data) == [4, 4, 4]
    assert all(len({topic_of[p["page"]] for p in c["pages"]}) == 1 for c in data)
    assert main(["cluster", "-n", "2", "--pages", "1", "--store", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert out.count("cluster ") == 2 and "more" in out and "mixed.pdf p." in out


def test_n_out_of_range_is_refused(tmp_path, topics_pdf) -> None:
    pdf, _ = topics_pdf
    with Index.create(tmp_path / "store", profile="offline") as index:
        index.add([pdf])
        with pytest.raises(ConfigurationError, match=r"at most the number of pages \(12\)"):
            index.cluster(13)
        with pytest.raises(ConfigurationError, match="`n`"):
            index.cluster(0)
