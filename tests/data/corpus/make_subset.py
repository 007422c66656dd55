"""Rebuilds this folder from the shared corpus: `python tests/data/corpus/make_subset.py /path/to/shared/corpus`.

Copies the chosen feeds and pages byte for byte and writes manifests that list only them (entries unchanged).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REAL_FEED_MAX_BYTES = 32_000  # every real/ feed below this size, plus the ones named below
REAL_FEEDS = {
    "real/feedreader__Rss20NYTimes.xml",
    # items that share one page: posts anchored on a day page, podcast episodes linking the show's home page
    "real/netnewswire__scriptingNews.rss", "real/rss-parser__itunes-missing-image.rss",
}
PAGE_MAX_BYTES = 70_000  # every page below this size, plus the ones named below
PAGES = {
    # tests/fleet.py: the pages a scale-out rule fires on, and the others
    "thelocal.se.tattooed.html", "tagesspiegel.de.abstandsregeln.html", "cicero.de.pandemie.html",
    "freitag.de.morgen.html", "sciencesetavenir.fr.rumeur.html", "francais.radio.cz-ministre.html",
    "fivethirtyeight.com.endorsement.html", "deutschlandfunk.de.titanic.html", "cbsnews.com.carolina.html",
    "newrepublic.com.neoliberalism.html", "phys.org.tool.html", "harpers.org.justice.html",
    "politico.com.retirement.html", "economist.com.thinking.html", "tagesschau.de.rheinmetall.html",
    "dw.com-elephants.html", "observer.com-LVMH.html", "uebermedien.de-Israel.html",
    # end to end; the same EFE wire story on two Chilean sites (story clusters)
    "bbc.com.52241221.html", "05844573ca7e1fba.html", "cooperativa.cl-presidente.html", "24horas.cl-segundo.html",
    # every language of the corpus (fi, ja, ru, pt, es, fr) and a page without an article
    "yle.fi.3-11212601.html", "nhk.or.jp.k100.html", "football.ua.podolski.html", "elpais.com.ciencia.html",
    "tdg.ch.chlorothalonil.html", "campograndenews.com.br-adolescente.htm", "eluniversal.com-senador.html",
    "ambito.com-paritarias.html", "swr.de-volleyball.html", "timesofisrael.com.washington.html",
    "scmp.com.playbook.html", "921019755f4a96ac.html", "1f765c48780665e8.html",
}


def main(shared: Path) -> None:
    feeds = json.loads((shared / "feeds" / "manifest.json").read_text())
    keep = [f for f in feeds["files"] if f["category"] != "real" or f["bytes"] < REAL_FEED_MAX_BYTES
            or f["file"] in REAL_FEEDS]
    copy(shared / "feeds", HERE / "feeds", [f["file"] for f in keep])
    feeds.update(count=len(keep), files=keep,
                 description=feeds["description"] + " SUBSET copied into tests/data by make_subset.py.")
    write(HERE / "feeds" / "manifest.json", feeds)

    pages = json.loads((shared / "pages" / "manifest.json").read_text())
    chosen = [p for p in pages["pages"] if p["bytes"] <= PAGE_MAX_BYTES or p["file"].split("/")[1] in PAGES]
    files = [p["file"] for p in chosen]
    files += [f.replace(".html", ".expected.txt") for f in files
              if f.startswith("zyte/") and (shared / "pages" / f.replace(".html", ".expected.txt")).exists()]
    copy(shared / "pages", HERE / "pages", files)
    pages.update(count=len(chosen), pages=chosen,
                 description=pages["description"] + " SUBSET copied into tests/data by make_subset.py.")
    write(HERE / "pages" / "manifest.json", pages)
    print(f"{len(keep)} feeds, {len(chosen)} pages")


def copy(src: Path, dst: Path, rels: list[str]) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    for rel in rels:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dst / rel)


def write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
